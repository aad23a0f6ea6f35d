"""Markup the page inlines, made to fit the Content-Security-Policy (config/settings.py): styles may
come from the app's files or carry the request's nonce, never from a `style` attribute."""

from django import template
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

# pygal's empty tooltip group; the report's stylesheet hides it instead (.chart .tooltip).
_TOOLTIP_STYLE = ' style="opacity: 0"'


@register.filter
def with_nonce(svg: SafeString, nonce: str) -> SafeString:
    """A server-drawn SVG chart (stability.report_charts) whose own <style> carries the nonce."""
    if not svg:
        return svg
    marked = str(svg).replace("<style", f'<style nonce="{escape(nonce)}"').replace(_TOOLTIP_STYLE, "")
    return mark_safe(marked)  # the chart's markup was safe, and the nonce is escaped
