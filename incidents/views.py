from django.shortcuts import redirect


def home(request):
    # The pages for people arrive with the web app; until then the API docs are the front door.
    return redirect("api-docs")
