"""Staff forms of the support app: a widget key (created and edited on /support/widget-keys/)
and an answer template's kind and informational variant (/support/templates/)."""
from __future__ import annotations

from urllib.parse import urlsplit

from django import forms

from apps.support import reply_guard
from apps.support import slots as slot_lib
from apps.support.models import AnswerTemplate, WidgetKey


def parse_origins(raw: str) -> list[str]:
    """One origin per line (or comma separated): scheme://host[:port], or "*" for any site."""
    origins, errors = [], []
    for item in raw.replace(",", "\n").splitlines():
        item = item.strip().rstrip("/")
        if not item:
            continue
        if item == "*":
            origins.append(item)
            continue
        parts = urlsplit(item)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query:
            errors.append(f"{item[:80]} is not an origin like https://shop.example.com")
            continue
        origins.append(f"{parts.scheme}://{parts.netloc.lower()}")
    if errors:
        raise forms.ValidationError(errors)
    return list(dict.fromkeys(origins))


class WidgetKeyForm(forms.ModelForm):
    origins = forms.CharField(
        label="Allowed sites", required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One origin per line, e.g. https://shop.example.com. This server's own pages "
                  "(such as the widget demo) are always allowed.",
    )

    OPTIONAL = ("title", "greeting", "rate_limit_per_minute", "ip_rate_limit_per_minute")

    class Meta:
        model = WidgetKey
        fields = ["name", "title", "greeting", "rate_limit_per_minute", "ip_rate_limit_per_minute"]
        labels = {"rate_limit_per_minute": "Messages per visitor per minute",
                  "ip_rate_limit_per_minute": "Requests per address per minute"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in self.OPTIONAL:  # left empty: the model's default
            self.fields[name].required = False
        if self.instance.pk:
            self.fields["origins"].initial = "\n".join(self.instance.allowed_origins or [])

    def clean(self):
        data = super().clean()
        for name in self.OPTIONAL:
            if data.get(name) in (None, ""):
                data[name] = getattr(self.instance, name) if self.instance.pk else WidgetKey._meta.get_field(name).default
        return data

    def clean_origins(self) -> list[str]:
        return parse_origins(self.cleaned_data.get("origins", ""))

    def save(self, commit: bool = True) -> WidgetKey:
        key = super().save(commit=False)
        key.allowed_origins = self.cleaned_data["origins"]
        if commit:
            key.save()
        return key


class WidgetKeyEditForm(WidgetKeyForm):
    """Editing adds the switch: a disabled key stops answering at once."""

    class Meta(WidgetKeyForm.Meta):
        fields = [*WidgetKeyForm.Meta.fields, "active"]
        labels = {**WidgetKeyForm.Meta.labels, "active": "Enabled (a disabled key stops answering at once)"}


class AnswerTemplateForm(forms.ModelForm):
    """Staff decide whether a template claims an action, and what the bot says instead."""

    class Meta:
        model = AnswerTemplate
        fields = ["text", "kind", "informational_variant"]
        widgets = {"text": forms.Textarea(attrs={"rows": 3}), "informational_variant": forms.Textarea(attrs={"rows": 3})}

    def clean_text(self) -> str:
        text = (self.cleaned_data.get("text") or "").strip()
        if not text:
            raise forms.ValidationError("The template needs a text.")
        return text

    def clean_informational_variant(self) -> str:
        text = (self.cleaned_data.get("informational_variant") or "").strip()
        if not text:
            return ""
        claim = reply_guard.claimed_action(text)
        if claim:
            raise forms.ValidationError(
                f"The variant still claims an action (\u201c{claim}\u201d); write what the bot can say "
                "without acting, e.g. \u201cI'm passing this to a colleague with your order number {order_id}.\u201d")
        unknown = [ph for ph in reply_guard.open_placeholders(text)
                   if not slot_lib.PLACEHOLDER.fullmatch(ph) and not slot_lib.SHOP_VALUE.fullmatch(ph)]
        if unknown:
            raise forms.ValidationError(
                f"Unknown placeholder {unknown[0]}: use {{order_id}}, {{name}}, {{email}}, {{phone}}, {{date}}, "
                "{amount}, {account_id} for the customer's values or {{Value name}} for the shop's.")
        return text
