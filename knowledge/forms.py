from django import forms
from django.contrib.auth.models import AbstractBaseUser

from tenants.selectors import projects_for_user

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
ALLOWED_SUFFIXES = (".pdf", ".docx", ".xlsx", ".txt", ".html", ".htm")


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
    sitemap = forms.URLField(required=False, assume_scheme="https")
    files = MultipleFileField(widget=MultipleFileInput(), required=False, help_text="PDF, DOCX, XLSX, TXT or HTML.")
    recrawl = forms.BooleanField(required=False, help_text="Fetch again pages crawled before.")
    semantic_chunking = forms.BooleanField(required=False, help_text="LLM topic boundaries (costs LLM calls).")

    def clean_urls(self) -> list[str]:
        urls = [line.strip() for line in self.cleaned_data["urls"].splitlines() if line.strip()]
        validator = forms.URLField(assume_scheme="https")
        return [validator.clean(url) for url in urls]

    def clean_files(self) -> list[object]:
        files = self.cleaned_data["files"]
        for upload in files:
            if not upload.name.lower().endswith(ALLOWED_SUFFIXES):
                raise forms.ValidationError(f"{upload.name}: unsupported file type")
            if upload.size > MAX_UPLOAD_BYTES:
                raise forms.ValidationError(f"{upload.name}: larger than {MAX_UPLOAD_BYTES // 1024 // 1024} MB")
        return files

    def clean(self) -> dict[str, object]:
        data = super().clean()
        if not (data.get("urls") or data.get("sitemap") or data.get("files")):
            raise forms.ValidationError("Give URLs, a sitemap or files to crawl.")
        return data


class SearchForm(ProjectChoiceForm):
    query = forms.CharField(max_length=500)
    url_filter = forms.CharField(max_length=2000, required=False, help_text="Only this page (optional).")
