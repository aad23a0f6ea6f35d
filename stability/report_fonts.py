"""How wide the report's text is in its font, Noto Sans CJK SC (fonts-noto-cjk; the page, the PDF and the
charts ask for it first), without laying anything out: the PDF's tables are fitted to the paper by it
(stability.report_layout) and the charts' margins sized by it (stability.report_charts).

The widths are the font's own advances (its hmtx table, read once with fontTools), in thousandths of an em,
for the printable ASCII characters and a few marks the report prints; every Chinese character of the font
is one em wide; any other character is taken as an em, which errs wide.
"""

import unicodedata

# The advances of " " to "~" (32-126), regular and bold.
_REGULAR = (
    "224 323 474 555 555 921 680 278 338 338 467 555 278 347 278 392 555 555 555 555 555 555 555 555 555 555 "
    "278 278 555 555 555 474 946 608 657 638 688 589 552 689 728 293 535 646 543 812 723 742 633 742 635 596 "
    "599 721 575 878 573 531 603 338 392 338 555 559 606 563 618 510 620 554 325 564 607 275 275 552 284 926 "
    "610 606 620 620 388 468 377 607 521 802 498 521 475 338 270 338 555"
)
_BOLD = (
    "227 370 574 590 590 963 740 325 378 378 507 590 325 370 325 387 590 590 590 590 590 590 590 590 590 590 "
    "325 325 590 590 590 514 1007 641 681 656 714 615 585 717 757 330 568 686 578 853 749 770 667 770 682 624 "
    "625 748 619 915 627 580 613 378 387 378 590 567 626 591 644 527 644 581 372 597 640 304 306 604 315 964 "
    "641 626 644 644 436 495 421 637 576 863 562 574 511 378 296 378 590"
)
_MARKS = {"–": (536, 544), "—": (894, 908)}


def _table(advances: str, column: int) -> dict[str, int]:
    table = {chr(32 + index): int(width) for index, width in enumerate(advances.split())}
    table.update({mark: widths[column] for mark, widths in _MARKS.items()})
    return table


REGULAR = _table(_REGULAR, 0)
BOLD = _table(_BOLD, 1)


def em_width(text: str, *, bold: bool = False) -> float:
    """How many ems `text` is wide on one line."""
    advances = BOLD if bold else REGULAR
    return sum(advances.get(char, 1000) for char in text if not unicodedata.combining(char)) / 1000


def text_width(text: str, size: float, *, bold: bool = False) -> float:
    """How wide `text` is at font size `size`, in the unit of `size` (px, mm, pt)."""
    return em_width(text, bold=bold) * size
