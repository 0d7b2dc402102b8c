"""estimate_cost and check_balance: the price of a request and the credits to pay it with, before anything is spent;
and, for generate_image, asking the user (MCP elicitation) before going over the spending cap."""

import logging
from typing import Annotated, Any

from mcp.server.mcpserver import AcceptedElicitation, Context, Elicit, ElicitationResult
from mcp_types import CallToolResult
from mcp_types.version import is_version_at_least
from pydantic import BaseModel, Field, WithJsonSchema

from ..catalog import Catalog, Estimate, GenerationRequest
from ..evolink import Balance, EvolinkError
from ..images.service import ConfirmOverCap, check_cap
from .common import READ_ONLY_REMOTE, Deps, ToolSpec, deps_of, error_result, result

log = logging.getLogger(__name__)

BILLING_PAGE = "https://evolink.ai/dashboard/billing"


class BalanceOutput(BaseModel):
    """The account's credits, and this API key's own limit where it has one."""

    key_limited: bool  # the API key has a spending limit of its own
    credits_left: float | None = None
    credits_used: float | None = None
    key_credits_left: float | None = None
    key_credits_used: float | None = None
    covers: bool | None = None  # check_balance's `needed`


class CostEstimateOutput(BaseModel):
    """What a generate_image request would reserve, and whether the cap and the balance cover it."""

    model: str
    credits: float | None = None  # None: no published price (then the first task's reservation tells)
    per_image: float | None = None
    images: int
    tier: str | None = None
    basis: str
    source: str | None = None
    checked: str | None = None
    cap: float | None = None
    within_cap: bool | None = None
    balance: BalanceOutput | None = None
    balance_covers: bool | None = None
    warnings: list[str] = Field(default_factory=list)
    next_step: str


def _spendable(balance: Balance) -> float | None:
    """Credits a request can draw on: the account's, or the key's own limit where that is less."""
    figures = [balance.user.remaining_credits]
    if balance.token.unlimited_credits is False:
        figures.append(balance.token.remaining_credits)
    known = [f for f in figures if f is not None]
    return min(known) if known else None


def _balance_out(balance: Balance) -> BalanceOutput:
    limited = balance.token.unlimited_credits is False
    return BalanceOutput(
        credits_left=balance.user.remaining_credits,
        credits_used=balance.user.used_credits,
        key_limited=limited,
        key_credits_left=balance.token.remaining_credits if limited else None,
        key_credits_used=balance.token.used_credits,
    )


def _balance_line(out: BalanceOutput) -> str:
    left = "unknown" if out.credits_left is None else f"{out.credits_left:g}"
    line = f"Balance: {left} credits left"
    if out.credits_used is not None:
        line += f" ({out.credits_used:g} used)"
    if out.key_limited:
        key_left = "unknown" if out.key_credits_left is None else f"{out.key_credits_left:g}"
        line += f"; this API key's own limit has {key_left} left"
    return line + "."


class SpendOverCap(BaseModel):
    spend: bool = Field(description="Spend the credits anyway, this once.")


def _can_ask(ctx: Context[Any]) -> bool:
    """The client takes form elicitations, on a channel that can carry one (a later round on 2026-07-28+, a
    request mid-call before)."""
    capabilities = ctx.client_capabilities
    elicitation = capabilities.elicitation if capabilities is not None else None
    if elicitation is None or (elicitation.form is None and elicitation.url is not None):
        return False
    version = ctx.protocol_version
    return (version is not None and is_version_at_least(version, "2026-07-28")) or ctx.session.can_send_request


def generation_request(
    prompt: str,
    size: str | None,
    quality: str | None,
    resolution: str | None,
    n: int | None,
    image_urls: list[str] | None,
    mask_url: str | None,
    callback_url: str | None,
    extra: dict[str, Any] | None,
) -> GenerationRequest:
    """generate_image's request arguments (estimate_cost's and ask_over_cap's are the same) as the use case's
    request."""
    return GenerationRequest(
        prompt=prompt,
        size=size,
        quality=quality,
        resolution=resolution,
        n=n,
        image_urls=list(image_urls or []),
        mask_url=mask_url,
        callback_url=callback_url,
        extra=dict(extra or {}),
    )


async def ask_over_cap(
    ctx: Context[Any],
    prompt: str,
    model: str | None = None,
    size: str | None = None,
    quality: str | None = None,
    resolution: str | None = None,
    n: int | None = None,
    image_urls: list[str] | None = None,
    mask_url: str | None = None,
    callback_url: str | None = None,
    extra: dict[str, Any] | None = None,
    max_credits: float | None = None,
) -> Elicit[SpendOverCap] | None:
    """generate_image's question to the user when its estimate is over the spending cap; None: nothing to ask
    (within the cap, no estimate, an invalid request the tool reports, or a client that cannot be asked)."""
    request = generation_request(prompt, size, quality, resolution, n, image_urls, mask_url, callback_url, extra)
    return await over_cap_question(ctx, model, request, max_credits)


async def over_cap_question(
    ctx: Context[Any], model: str | None, request: GenerationRequest, max_credits: float | None
) -> Elicit[SpendOverCap] | None:
    """The question to the user when a request's estimate is over the spending cap (the resolver of each tool that
    makes images builds its request and asks this); None: nothing to ask."""
    deps = deps_of(ctx)
    cap = _cap(deps, max_credits or None)  # 0 is refused by the tool itself
    if cap is None or not _can_ask(ctx):
        return None
    try:
        prepared = deps.service.prepare(model, request, allowed_dirs=deps.allowed_dirs)
    except EvolinkError:
        return None
    estimate = await deps.service.estimate(prepared)
    if estimate.credits is None or estimate.credits <= cap:
        return None
    message = (
        f"This image request would reserve about {estimate.credits:g} credits ({estimate.basis}), over your "
        f"spending cap of {cap:g} credits. Spend them anyway?"
    )
    return Elicit(message, SpendOverCap)


OverCapAnswer = ElicitationResult[SpendOverCap]


def over_cap_confirmer(answer: OverCapAnswer) -> ConfirmOverCap | None:
    """The user's answer to ask_over_cap as the use case's confirmation; None when nothing was asked."""
    if isinstance(answer, AcceptedElicitation) and answer.data is None:
        return None
    agreed = isinstance(answer, AcceptedElicitation) and answer.data.spend

    async def confirm(estimate: Estimate, cap: float) -> bool:
        return agreed

    return confirm


def _cap(deps: Deps, max_credits: float | None) -> float | None:
    """The spending cap generate_image would apply: the lower of the argument and EVOLINK_MAX_CREDITS_PER_CALL."""
    caps = [c for c in (max_credits, deps.settings.max_credits_per_call) if c is not None]
    return min(caps) if caps else None


def _price_lines(out: CostEstimateOutput, estimate: Estimate) -> list[str]:
    price = "no estimate" if estimate.credits is None else f"about {estimate.credits:g} credits"
    lines = [f"{out.model}: {price} ({estimate.basis}). The request is valid."]
    if estimate.source:
        lines.append(f"Price source: {estimate.source}, read {estimate.checked}.")
    if out.cap is not None and estimate.credits is not None:
        out.within_cap = estimate.credits <= out.cap
        if not out.within_cap:
            lines.append(f"Over the cap of {out.cap:g} credits: generate_image would refuse it (or ask the user).")
    return lines


async def _balance_lines(deps: Deps, out: CostEstimateOutput) -> list[str]:
    try:
        balance = await deps.client.get_balance()
    except EvolinkError as exc:
        out.warnings.append(f"The balance could not be read: {exc.message}")
        return []
    out.balance = _balance_out(balance)
    lines = [_balance_line(out.balance)]
    spendable = _spendable(balance)
    if spendable is not None and out.credits is not None:
        out.balance_covers = out.credits <= spendable
        if not out.balance_covers:
            lines.append(f"The balance does not cover it: top up at {BILLING_PAGE}.")
    return lines


def _next_step(out: CostEstimateOutput) -> str:
    if out.balance_covers is False:
        return f"Ask the user to top up at {BILLING_PAGE}, or pick a cheaper model, tier or fewer images."
    if out.within_cap is False:
        return "Ask the user before raising max_credits, or pick a cheaper model, tier or fewer images."
    return "Call generate_image with the same arguments to create it."


async def check_balance(
    ctx: Context[Any],
    needed: Annotated[
        float | None, Field(ge=0, description="Credits about to be spent: says whether the balance covers them.")
    ] = None,
) -> Annotated[CallToolResult, BalanceOutput]:
    """The account's credits left and used, and this API key's own limit (free)."""
    deps = deps_of(ctx)
    try:
        balance = await deps.client.get_balance()
    except EvolinkError as exc:
        return error_result(exc)
    out = _balance_out(balance)
    text = _balance_line(out)
    spendable = _spendable(balance)
    if needed is not None and spendable is not None:
        out.covers = needed <= spendable
        text += f" {needed:g} credits: {'covered' if out.covers else 'not covered'}."
    if spendable is not None and (spendable <= 0 or out.covers is False):
        text += f" Top up at {BILLING_PAGE}."
    return result(text, out.model_dump(mode="json", exclude_none=True))


def cost_tools(catalog: Catalog) -> list[ToolSpec]:
    async def estimate_cost(
        prompt: Annotated[str, Field(description="As for generate_image.")],
        ctx: Context[Any],
        # No enum (generate_image has it): a wrong id is answered with a "did you mean", at no tools/list cost.
        model: Annotated[str, Field(description="See list_models.")] = catalog.default.id,
        size: Annotated[str | None, Field(description="As for generate_image.")] = None,
        quality: Annotated[str | None, Field(description="As for generate_image.")] = None,
        resolution: Annotated[str | None, Field(description="As for generate_image.")] = None,
        n: Annotated[int | None, Field(description="As for generate_image.")] = None,
        image_urls: Annotated[list[str] | None, Field(description="As for generate_image.")] = None,
        mask_url: Annotated[str | None, Field(description="As for generate_image.")] = None,
        callback_url: Annotated[str | None, Field(description="As for generate_image.")] = None,
        extra: Annotated[
            dict[str, Any] | None, WithJsonSchema({"type": "string"}), Field(description="As for generate_image.")
        ] = None,
        max_credits: Annotated[float | None, Field(ge=0, description="The cap generate_image would get.")] = None,
    ) -> Annotated[CallToolResult, CostEstimateOutput]:
        """What a generate_image request would cost (free; nothing paid is sent): checks it, prices it from Evolink's
        published prices, says whether max_credits and the balance cover it."""
        deps = deps_of(ctx)
        request = generation_request(prompt, size, quality, resolution, n, image_urls, mask_url, callback_url, extra)
        try:
            check_cap(max_credits)
            prepared = deps.service.prepare(model, request, allowed_dirs=deps.allowed_dirs)
        except EvolinkError as exc:
            return error_result(exc)
        estimate = await deps.service.estimate(prepared)
        out = CostEstimateOutput(
            model=prepared.spec.id,
            credits=estimate.credits,
            per_image=estimate.per_image,
            images=estimate.images,
            tier=estimate.tier,
            basis=estimate.basis,
            source=estimate.source,
            checked=estimate.checked,
            cap=_cap(deps, max_credits),
            warnings=[p.message for p in prepared.warnings],
            next_step="",
        )
        lines = [*_price_lines(out, estimate), *await _balance_lines(deps, out), "Nothing was sent or charged."]
        out.next_step = _next_step(out)
        lines.extend(f"Warning: {w}" for w in out.warnings)
        lines.append(f"Next step: {out.next_step}")
        return result("\n".join(lines), out.model_dump(mode="json", exclude_none=True))

    return [
        ToolSpec.of(estimate_cost, "Estimate a generation's cost", READ_ONLY_REMOTE),
        ToolSpec.of(check_balance, "Check the credits balance", READ_ONLY_REMOTE),
    ]
