"""Forms of the project console."""

from typing import Any

from django import forms
from django.contrib.auth import get_user_model

from bots.webhook_registration import TokenRejected, bot_token_check
from knowledge.forms import crawl_urls_field_clean
from tenants.models import Membership, Project, generate_webhook_secret
from tenants.project_settings import PROJECT_SETTINGS, SettingInvalid


class ProjectForm(forms.ModelForm):
    # Write-only: the field is never filled from the stored value, and empty input keeps the old token.
    bot_token = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Write-only. Leave empty to keep the current token.",
    )
    # Write-only too: whoever knows it can post updates as Telegram. A new one takes effect on Telegram's side
    # only after "Verify token and register webhook".
    webhook_secret = forms.RegexField(
        regex=r"^[A-Za-z0-9_-]{1,256}$",
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        error_messages={"invalid": "Use 1-256 characters: letters, digits, _ and -."},
        help_text="Write-only. Leave empty to keep the current secret (a new project gets a random one); after a "
        "change, register the webhook again.",
    )
    followup_steps = forms.CharField(
        required=False,
        help_text="Silence before each follow-up, comma-separated: s, m, h or d (default 5m, 15m, 40m, 24h). "
        "Empty: no follow-ups.",
    )

    business_quiet_seconds = forms.CharField(
        label="Business quiet period",
        initial="30m",
        help_text="Telegram Business: after the owner writes in a chat himself, the bot stays silent there this long "
        "from his last message (5s to 30d, e.g. 30m or 2h).",
    )

    class Meta:
        model = Project
        fields = [
            "slug", "name", "kind", "language", "bot_token", "webhook_secret", "lead_group_id", "prompt",
            "start_reply", "unavailable_reply", "price_url", "model_toolcaller", "model_extract", "model_summary",
            "model_transcription",
            "weekly_budget_usd", "weekly_cap_usd", "followup_steps", "quiet_hours_start", "quiet_hours_end",
            "timezone", "similarity_threshold", "business_quiet_seconds",
        ]  # fmt: skip
        widgets = {
            "prompt": forms.Textarea(attrs={"rows": 12, "class": "vLargeTextField console-prompt"}),
            "start_reply": forms.Textarea(attrs={"rows": 3}),
            "unavailable_reply": forms.Textarea(attrs={"rows": 2}),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.initial["bot_token"] = ""
        self.initial["webhook_secret"] = ""
        steps = self.initial.get("followup_steps")
        if isinstance(steps, list):
            self.initial["followup_steps"] = PROJECT_SETTINGS["followup_steps"].format(steps)
        quiet = self.initial.get("business_quiet_seconds")
        if isinstance(quiet, int):
            self.initial["business_quiet_seconds"] = PROJECT_SETTINGS["business_quiet_seconds"].format(quiet)

    def _parsed(self, key: str, text: str) -> Any:
        """The setting's one parser (shared with `project set`); its message becomes the field's error."""
        try:
            return PROJECT_SETTINGS[key].parse(text)
        except SettingInvalid as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_bot_token(self) -> str:
        token = self.cleaned_data["bot_token"].strip()
        if not token and self.instance.pk:
            return Project.objects.get(pk=self.instance.pk).bot_token
        if not token:
            raise forms.ValidationError("A new project needs its bot token.")
        token = self._parsed("bot_token", token)
        try:
            bot_token_check(token=token)  # None (Telegram unreachable) keeps the well-formed token
        except TokenRejected as exc:
            raise forms.ValidationError(str(exc)) from None
        return token

    def clean_webhook_secret(self) -> str:
        secret = self.cleaned_data["webhook_secret"]
        if not secret and self.instance.pk:
            return Project.objects.get(pk=self.instance.pk).webhook_secret
        return secret or generate_webhook_secret()

    def clean_followup_steps(self) -> list[int]:
        return self._parsed("followup_steps", self.cleaned_data["followup_steps"])

    def clean_business_quiet_seconds(self) -> int:
        return self._parsed("business_quiet_seconds", self.cleaned_data["business_quiet_seconds"])


class ProjectCrawlForm(forms.Form):
    urls = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "https://shop.example/prices"}),
        required=False,
        help_text="Pages to add, one URL per line.",
    )
    # Checked by crawl_request, with the same rules as every other crawl entry point.
    sitemap = forms.CharField(max_length=2000, required=False, help_text="Or a sitemap to read the URLs from.")
    recrawl = forms.BooleanField(required=False, help_text="Fetch again what was fetched before.")

    def clean_urls(self) -> list[str]:
        return crawl_urls_field_clean(self.cleaned_data["urls"])  # the one crawl input validation


class MembershipForm(forms.ModelForm):
    """A member named by username, so that owners never browse the platform's list of accounts."""

    username = forms.CharField(max_length=150, help_text="An existing staff account; a superuser creates accounts.")

    class Meta:
        model = Membership
        fields = ["role"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["username"] = self.instance.user.get_username()

    def clean_username(self) -> Any:
        username = self.cleaned_data["username"].strip()
        user = get_user_model().objects.filter(username=username, is_active=True, is_staff=True).first()
        if user is None:
            raise forms.ValidationError(f"No active staff account is called {username!r}.")
        return user

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        user, project = cleaned.get("username"), getattr(self.instance, "project", None)
        if user is not None and project is not None:
            others = Membership.objects.filter(user=user, project=project).exclude(pk=self.instance.pk)
            if others.exists():
                self.add_error("username", f"{user.get_username()} is a member of this project already.")
        return cleaned

    def save(self, commit: bool = True) -> Membership:
        self.instance.user = self.cleaned_data["username"]
        return super().save(commit)
