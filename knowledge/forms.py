from django import forms
from django.contrib.auth.models import AbstractBaseUser

from knowledge.formats import SUPPORTED_SUFFIXES
from knowledge.models import Source
from knowledge.services import CrawlInputError, crawl_file_check, crawl_url_clean
from tenants.selectors import projects_for_user

SUPPORTED_TYPES = ", ".join(suffix.lstrip(".").upper() for suffix in SUPPORTED_SUFFIXES)


def crawl_urls_field_clean(value: str) -> list[str]:
    """One URL per line, each through the crawl input validation shared with the command and the console."""
    urls, problems = [], []
    for line in value.splitlines():
        if line.strip():
            try:
                urls.append(crawl_url_clean(line))
            except CrawlInputError as exc:
                problems += exc.problems
    if problems:
        raise forms.ValidationError(problems)
    return urls


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def clean(self, data: object, initial: object = None) -> list[object]:
        files = data if isinstance(data, list | tuple) else [data] if data else []
        return [super(MultipleFileField, self).clean(item, initial) for item in files]


class ProjectChoiceForm(forms.Form):
    project = forms.ModelChoiceField(queryset=None)

    def __init__(self, *args: object, user: AbstractBaseUser, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["project"].queryset = projects_for_user(user=user).alive().filter(kind="sales")


class CrawlForm(ProjectChoiceForm):
    urls = forms.CharField(widget=forms.Textarea(attrs={"rows": 5}), required=False, help_text="One URL per line.")
    sitemap = forms.CharField(max_length=2000, required=False, help_text="A sitemap.xml URL.")
    files = MultipleFileField(widget=MultipleFileInput(), required=False, help_text=f"{SUPPORTED_TYPES}.")
    schedule = forms.ChoiceField(
        choices=Source.Schedule.choices, initial=Source.Schedule.OFF, help_text="Re-crawl these sources on their own."
    )
    recrawl = forms.BooleanField(required=False, help_text="Re-embed every page, even unchanged ones.")
    semantic_chunking = forms.BooleanField(required=False, help_text="LLM topic boundaries (costs LLM calls).")

    def clean_urls(self) -> list[str]:
        return crawl_urls_field_clean(self.cleaned_data["urls"])

    def clean_sitemap(self) -> str:
        sitemap = self.cleaned_data["sitemap"].strip()
        try:
            return crawl_url_clean(sitemap) if sitemap else ""
        except CrawlInputError as exc:
            raise forms.ValidationError(exc.problems) from None

    def clean_files(self) -> list[object]:
        files = self.cleaned_data["files"]
        problems = []
        for upload in files:
            try:
                crawl_file_check(name=upload.name, size=upload.size)
            except CrawlInputError as exc:
                problems += exc.problems
        if problems:
            raise forms.ValidationError(problems)
        return files

    def clean(self) -> dict[str, object]:
        data = super().clean()
        if not (data.get("urls") or data.get("sitemap") or data.get("files")):
            raise forms.ValidationError("Give URLs, a sitemap or files to crawl.")
        return data


class SearchForm(ProjectChoiceForm):
    query = forms.CharField(max_length=500)
    url_filter = forms.CharField(max_length=2000, required=False, help_text="Only this page (optional).")


class GoldenQuestionSaveForm(ProjectChoiceForm):
    """The search playground's "save as golden question": the query and the page chosen among its results."""

    question = forms.CharField(max_length=500)
    expected_url = forms.CharField(max_length=2000)
