from django import forms

from matching.broadcasts import TEXT_LIMIT


class BroadcastForm(forms.Form):
    text = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6, "cols": 80}),
        max_length=TEXT_LIMIT,
        strip=True,
        help_text="Sent as is, through each project's bot, to every selected user who has not blocked it.",
    )
