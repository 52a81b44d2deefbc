"""What a call cost, estimated from what its row stores: the Realtime model's tokens (calls.usage,
summed by the bridge over the call's responses) at a price table per model, plus the call's Twilio
minutes at a per-minute rate.

The cost is derived when the log is read, not stored: a price change (or a correction of the
table) then applies to the whole log without rewriting rows, and every figure can be rechecked
from `usage` and the table printed by `supactl calls show --json`.

Overrides are the operator's (the prices are the operator's contracts with OpenAI and Twilio, not a
tenant's): a JSON file named by `--prices FILE` or SUPACTL_PRICES_FILE,
    {"models": {"gpt-realtime": {"text_input": 4, ..., "audio_output": 64}}, "twilio_per_minute": 0.0085}
(models merge over the defaults, per model; USD per 1M tokens), and SUPACTL_TWILIO_PER_MINUTE.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from supactl.errors import ConfigError

# Prices as listed on OpenAI's model pages (developers.openai.com/api/docs/models/<model>, the
# "Text tokens" and "Audio tokens" tables), looked up 2026-12-04. USD per 1M tokens.
PRICES_AS_OF = "2026-12-04"
PRICES_SOURCE = "https://developers.openai.com/api/docs/models"
# Twilio's US inbound local rate (support.twilio.com, "How Volume Pricing works at Twilio":
# $0.0085/min), looked up 2026-12-04. Outbound and toll-free minutes cost more: set your rate.
DEFAULT_TWILIO_PER_MINUTE = 0.0085


@dataclass(frozen=True)
class ModelPrices:
    """USD per 1M tokens of each kind the Realtime API's usage reports."""

    text_input: float
    text_cached_input: float
    text_output: float
    audio_input: float
    audio_cached_input: float
    audio_output: float


_REALTIME_GA = ModelPrices(4.0, 0.40, 16.0, 32.0, 0.40, 64.0)
DEFAULT_MODEL_PRICES: dict[str, ModelPrices] = {
    "gpt-realtime": _REALTIME_GA,
    "gpt-realtime-1.5": _REALTIME_GA,
    "gpt-realtime-2": ModelPrices(4.0, 0.40, 24.0, 32.0, 0.40, 64.0),
    "gpt-realtime-2.1-mini": ModelPrices(0.60, 0.06, 2.40, 10.0, 0.30, 20.0),
}
# The bridge's default model (supabase/functions/twilio-voice/config.ts DEFAULT_REALTIME_MODEL),
# for rows written before the bridge recorded the model.
DEFAULT_MODEL = "gpt-realtime"


@dataclass(frozen=True)
class PriceTable:
    models: Mapping[str, ModelPrices] = field(default_factory=lambda: dict(DEFAULT_MODEL_PRICES))
    twilio_per_minute: float = DEFAULT_TWILIO_PER_MINUTE
    as_of: str = PRICES_AS_OF

    def describe(self) -> dict[str, Any]:
        return {"as_of": self.as_of, "twilio_per_minute": self.twilio_per_minute,
                "models": {name: asdict(prices) for name, prices in self.models.items()}}


def load_price_table(path: str | Path | None = None, environ: Mapping[str, str] = os.environ) -> PriceTable:
    """The default table with the operator's overrides (file, then SUPACTL_TWILIO_PER_MINUTE)."""
    models = dict(DEFAULT_MODEL_PRICES)
    twilio = DEFAULT_TWILIO_PER_MINUTE
    as_of = PRICES_AS_OF
    source = path or environ.get("SUPACTL_PRICES_FILE")
    if source:
        overrides = _read_overrides(Path(source))
        for name, prices in overrides.get("models", {}).items():
            models[name] = _model_prices(name, prices)
        if "twilio_per_minute" in overrides:
            twilio = _rate(overrides["twilio_per_minute"], f"twilio_per_minute in {source}")
        as_of = f"{source} over the defaults of {PRICES_AS_OF}"
    if environ.get("SUPACTL_TWILIO_PER_MINUTE"):
        twilio = _rate(environ["SUPACTL_TWILIO_PER_MINUTE"], "SUPACTL_TWILIO_PER_MINUTE")
    return PriceTable(models, twilio, as_of)


def _read_overrides(path: Path) -> dict[str, Any]:
    hint = 'a JSON object: {"models": {"MODEL": {"text_input": 4, ...}}, "twilio_per_minute": 0.0085}'
    try:
        if path.stat().st_size > 1_000_000:
            raise ConfigError(f"price file {path} is larger than 1 MB", hint=hint)
        value = json.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read the price file {path}: {exc.strerror}", hint=hint) from None
    except ValueError as exc:
        raise ConfigError(f"price file {path} is not JSON: {exc}", hint=hint) from None
    if not isinstance(value, dict) or not isinstance(value.get("models", {}), dict) or set(value) - {
            "models", "twilio_per_minute"}:
        raise ConfigError(f"price file {path} has the wrong shape", hint=hint)
    return value


def _model_prices(name: str, prices: Any) -> ModelPrices:
    kinds = [f.name for f in fields(ModelPrices)]
    if not isinstance(prices, dict) or set(prices) != set(kinds):
        raise ConfigError(f"prices for model {name!r} must give exactly: {', '.join(kinds)}",
                          hint="USD per 1M tokens, as on the model's page")
    return ModelPrices(**{kind: _rate(prices[kind], f"{name}.{kind}") for kind in kinds})


def _rate(value: Any, what: str) -> float:
    try:
        rate = float(value)
    except (TypeError, ValueError):
        rate = math.nan
    if isinstance(value, bool) or not math.isfinite(rate) or rate < 0:
        raise ConfigError(f"{what} must be a price (a number >= 0), not {value!r}")
    return rate


@dataclass(frozen=True)
class TokenKinds:
    """The call's tokens split the way they are priced (cached input is part of input)."""

    text_input: int
    text_cached_input: int
    text_output: int
    audio_input: int
    audio_cached_input: int
    audio_output: int


def token_kinds(usage: Mapping[str, Any]) -> TokenKinds:
    """From the bridge's flattened usage (realtime_events.ts flattenUsage): details when the API
    gave them; otherwise what is not audio counts as text. Transcription usage ("transcription.")
    is the transcription model's, not priced here."""

    def count(name: str, default: float = 0) -> int:
        value = usage.get(name, default)
        return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0

    audio_in = count("input_token_details.audio_tokens")
    audio_out = count("output_token_details.audio_tokens")
    cached_audio = count("input_token_details.cached_tokens_details.audio_tokens")
    cached = count("input_token_details.cached_tokens")
    return TokenKinds(
        text_input=count("input_token_details.text_tokens", count("input_tokens") - audio_in),
        text_cached_input=count("input_token_details.cached_tokens_details.text_tokens", cached - cached_audio),
        text_output=count("output_token_details.text_tokens", count("output_tokens") - audio_out),
        audio_input=audio_in,
        audio_cached_input=cached_audio,
        audio_output=audio_out,
    )


@dataclass(frozen=True)
class CallCost:
    model: str
    model_usd: float | None  # None: the table has no price for the model
    twilio_minutes: int
    twilio_usd: float
    total_usd: float | None


def model_cost(tokens: TokenKinds, prices: ModelPrices) -> float:
    """Uncached input at the input price, cached input at the cached price, output at the output price."""
    return (max(0, tokens.text_input - tokens.text_cached_input) * prices.text_input
            + tokens.text_cached_input * prices.text_cached_input
            + tokens.text_output * prices.text_output
            + max(0, tokens.audio_input - tokens.audio_cached_input) * prices.audio_input
            + tokens.audio_cached_input * prices.audio_cached_input
            + tokens.audio_output * prices.audio_output) / 1_000_000


def billed_minutes(duration_s: float | None) -> int:
    """Twilio bills a call per started minute."""
    return 0 if not duration_s or duration_s <= 0 else math.ceil(duration_s / 60)


def call_cost(usage: Mapping[str, Any], model: str | None, duration_s: float | None, table: PriceTable) -> CallCost:
    name = model or DEFAULT_MODEL
    prices = table.models.get(name)
    minutes = billed_minutes(duration_s)
    twilio = minutes * table.twilio_per_minute
    tokens = model_cost(token_kinds(usage), prices) if prices is not None else None
    return CallCost(name, tokens, minutes, twilio, None if tokens is None else tokens + twilio)
