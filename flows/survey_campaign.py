"""Send an SMS survey campaign: load, clean, suppress, plan, send in chunks, report.

The flow only wires the steps; each is a task beside its rules in ``tasks/``. Run it from the
command line::

    python -m flows.survey_campaign --survey-id IDENT
        (--recipients FILE | --db-url URL --query SQL) [--phone-column NAME]
        [--campaign-id ID] [--dry-run]
        [--sample SIZE [--quota-by COLUMN] [--quota N|proportional] [--seed S]]
        [--sample-exclude-days D] [--pressure-rule NAME=LIMIT/DAYS[:survey]]...
        [--witnesses FILE [--witnesses-only]] [--survey-by COLUMN --survey-map VALUE=SURVEY,...]

The gateway comes from ``SMSPARTNER_BASE_URL`` and the key from ``SMSPARTNER_API_KEY`` or the
Prefect Secret block ``smspartner-api-key``. The last line on stdout is the JSON summary
(whenever the campaign got as far as one, stops included). Exit codes: 0 every row sent or
rejected with a reason, 3 the campaign ran but rows ended failed or in doubt, 1 an error or a
stop before any send (one ``error:`` line on stderr), 2 a usage error.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

from prefect import flow
from prefect.states import State
from pydantic import ValidationError

from flows import ending
from flows.cli import add_model_options, failure_exit, model_from_args, one_line, print_result
from flows.parameters import (
    WINDOW_LABELS,
    AnySource,
    ApiKeyBlock,
    ApprovalModeChoice,
    ApprovalTimeoutHours,
    ApproveAboveCost,
    ApproveAboveRecipients,
    Audience,
    AudienceParam,
    Budget,
    CampaignId,
    DatabaseSource,
    DeliveryWindow,
    DryRun,
    FileSource,
    Language,
    Limits,
    Recipients,
    RecipientSource,
    ResumeChangedInput,
    SendWithinCredits,
    SourceKind,
    SuppressionList,
    SurveyId,
    UrlSource,
    Window,
    WindowPreset,
    confine_form_paths,
    windows_path_refusal,
)
from smspartner import SMSPartnerClient
from tasks import approval as approve
from tasks import dburl, runtime
from tasks import plan as pl
from tasks.errors import OperatorError, UsageError
from tasks.i18n import DEFAULT_LANG, LANGS, Lang
from tasks.money import CreditsShort
from tasks.progress import Phase
from tasks.slots import HORIZON_DAYS
from tasks.steps import progress
from tasks.steps.approval import until_approved
from tasks.steps.prepare import (
    Source,
    check_credits_task,
    clean_task,
    fetch_task,
    load_task,
    plan_task,
    suppress_task,
)
from tasks.steps.report import ReportRequest, report_task
from tasks.steps.runs import campaign_id_of_run, name_this_run
from tasks.steps.send import credits_task, credits_to_check, send_campaign
from tasks.steps.witnesses import read_witnesses_task, witness_task
from tasks.witnesses import WitnessRequest

# Callers import the form models from here too (tests, bench/fanout.py).
__all__ = ["DeliveryWindow", "Limits", "RecipientSource", "SourceKind", "send_survey_campaign"]


@flow(name="send-survey-campaign", log_prints=False, persist_result=False)
def send_survey_campaign(
    # The form's order is this order: which survey, which people, when, how much, then the
    # advanced settings (callers pass every parameter by keyword).
    survey_id: SurveyId,
    recipients: Recipients = FileSource(),  # read-only default
    suppression_list: SuppressionList = None,
    audience: AudienceParam = Audience(),  # read-only default
    window: Window = DeliveryWindow(),
    dry_run: DryRun = False,
    approve_above_cost: ApproveAboveCost = None,
    approve_above_recipients: ApproveAboveRecipients = None,
    send_within_credits: SendWithinCredits = False,
    limits: Budget = Limits(),
    campaign_id: CampaignId = None,
    resume_changed_input: ResumeChangedInput = False,
    approval_timeout_hours: ApprovalTimeoutHours = approve.Approval.timeout_hours,
    approval_mode: ApprovalModeChoice = approve.ApprovalMode.pause,
    api_key_block: ApiKeyBlock = None,
    lang: Language = DEFAULT_LANG,
) -> dict[str, Any] | State[Any]:
    """Send an SMS survey to a list of recipients, lawfully and exactly once.

    The form's words (French, for the operator) are the parameters' titles and descriptions in
    ``flows/parameters.py``; what each parameter does, for a developer:

    Args:
        survey_id: The survey's identifier in the SMS Partner account (``sondageIdent``).
        recipients: Where the recipients come from: a file of the data folder, a database
            query, or a file's address (https, object storage), downloaded into the campaign's
            state folder. ``RecipientSource`` and the old dict forms are taken too.
        suppression_list: An opt-out list (CSV or Excel, in the data folder) added to the
            never-text store before planning; empty: the store alone (it always applies).
        audience: Who is asked: a random sample (size, quotas, exclusion, seed), the
            contact-pressure rules besides the frequency cap, witness phones (or witnesses
            only), a survey per value of a column.
        window: Sending hours, in each recipient's own time zone.
        dry_run: Plan and report, send nothing.
        approve_above_cost: Ask a person before sending when the estimated cost passes this.
        approve_above_recipients: Ask a person before sending above this many recipients.
        send_within_credits: Short of credits or budget, send what the money covers instead
            of nothing.
        limits: Budget cap, cost estimate, frequency cap, then the technical settings.
        campaign_id: Reuse an id to resume a campaign (nobody is texted twice); empty for a new
            one (a scheduled run takes its id from its schedule slot).
        resume_changed_input: Let a resumed campaign take a changed input (new rows added).
        approval_timeout_hours: How long an approval is waited for.
        approval_mode: Ask in the UI, stop (command line), or approved in advance.
        api_key_block: The Secret block of this deployment's SMS Partner account.
        lang: The language of the reports and artifacts (fr or en).
    """
    started = time.monotonic()
    try:
        cid = pl.validate_campaign_id(campaign_id) if campaign_id else campaign_id_of_run(survey_id)
    except OperatorError as exc:
        return ending.failed(exc)
    name_this_run(cid)
    progress.begin(cid, lang)
    try:
        run = _settle(
            cid,
            started,
            survey_id=survey_id,
            recipients=recipients,
            suppression_list=suppression_list,
            audience=audience,
            dry_run=dry_run,
            window=window,
            limits=limits,
            approve_above_cost=approve_above_cost,
            approve_above_recipients=approve_above_recipients,
            approval_mode=approval_mode,
            approval_timeout_hours=approval_timeout_hours,
            resume_changed_input=resume_changed_input,
            send_within_credits=send_within_credits,
            lang=lang,
            api_key_block=api_key_block,
        )
        progress.phase(cid, Phase.preparing)
        prepared, verdict = _approved_plan(run)
        witnessed = _text_witnesses(run, prepared)
        sent = _send(run, prepared)
        progress.phase(cid, Phase.reporting)
        summary = report_task(
            prepared,
            run.report,
            sent.credits_after,
            sent.seconds,
            verdict.record(),
            witnesses=witnessed,
        )
        return ending.end_state(summary, verdict, run.approval, sent.stop)
    except OperatorError as exc:
        return ending.failed(exc)
    finally:
        progress.end(cid)


# -- the flow's steps ---------------------------------------------------------------------------


def _settle(
    cid: str,
    started: float,
    *,
    survey_id: str,
    recipients: AnySource,
    suppression_list: str | None,
    audience: Audience,
    dry_run: bool,
    window: DeliveryWindow,
    limits: Limits,
    approve_above_cost: float | None,
    approve_above_recipients: int | None,
    approval_mode: approve.ApprovalMode,
    approval_timeout_hours: float,
    resume_changed_input: bool,
    send_within_credits: bool,
    lang: Lang,
    api_key_block: str | None,
) -> _Campaign:
    """The run's inputs from its form, settled before its first step: the files it may read,
    the gateway and the ledger, the opt-out lists, the approval, the plan's request."""
    if isinstance(recipients, UrlSource):
        _, suppression_list = _readable(Source(), suppression_list)
        source = recipients.fetched(fetch_task(recipients.url, cid))
    else:
        source, suppression_list = _readable(recipients.plain(), suppression_list)
    base_url, ledger_url = runtime.gateway_url(), runtime.ledger_url()
    lists = runtime.opt_out_lists(suppression_list)  # imported into the never-text store
    approval = limits.approval(
        above_cost=approve_above_cost,
        above_recipients=approve_above_recipients,
        mode=approval_mode,
        timeout_hours=approval_timeout_hours,
        lang=lang,
    )
    who = audience.plan(limits.frequency_cap_days)
    request = limits.plan_request(
        campaign_id=cid,
        survey_id=survey_id,
        ledger_url=ledger_url,
        window=window,
        # Witnesses only: the campaign is planned as a dry run, and only they are texted.
        dry_run=dry_run or audience.witnesses_only,
        audience=who,
        resume_changed_input=resume_changed_input,
        send_within_credits=send_within_credits,
        lang=lang,
    )
    return _Campaign(
        request=request,
        approval=approval,
        source=source,
        phone_column=recipients.phone_column,
        opt_out_lists=lists,
        window=window,
        limits=limits,
        base_url=base_url,
        key_block=api_key_block,
        started=started,
        witnesses=_witness_numbers(audience, lang),
        witnesses_only=audience.witnesses_only,
        dry_run_asked=dry_run,
    )


def _witness_numbers(audience: Audience, lang: Lang) -> list[str]:
    """The witness phones of the run (its file, else the worker's setting), read before any
    send: a list that cannot be read stops the campaign in one line."""
    named = audience.witnesses
    if named and runtime.from_deployment():
        try:  # a file the form named: inside the data folders, as the other files
            _, named = confine_form_paths(Source(), named, runtime.form_roots())
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    # No list named nor set on the worker: no task run to show in every campaign's graph.
    numbers = read_witnesses_task(named, lang) if runtime.witnesses_file(named) else []
    if audience.witnesses_only and not numbers:
        raise UsageError(
            "« Envoyer seulement aux témoins » demande un fichier des témoins (--witnesses, ou "
            f"{runtime.WITNESSES_ENV} sur le serveur) ; rien n'a été envoyé"
        )
    return numbers


def _text_witnesses(run: _Campaign, prepared: pl.Prepared) -> dict[str, Any] | None:
    """The witnesses texted once per campaign (per survey) when its first SMS leave, or at once
    in the witnesses-only mode; nothing in a dry run."""
    if not run.witnesses or (prepared.dry_run and not run.witnesses_only) or run.dry_run_asked:
        return None
    r = run.request
    result = witness_task(
        WitnessRequest(
            campaign_id=r.campaign_id,
            surveys=tuple(prepared.surveys or [r.survey_id]),
            numbers=tuple(run.witnesses),
            schedule=None if run.witnesses_only else prepared.first_slot,
            base_url=run.base_url,
            key_block=run.key_block,
            ledger_url=r.ledger_url,
            ledger_outage=r.ledger_outage,
            lang=r.lang,
            only=run.witnesses_only,
        )
    )
    return result.as_dict()


def _readable(source: Source, named_list: str | None) -> tuple[Source, str | None]:
    """The files the run may read: those a deployment's form named, confined to the data
    folders (anyone with the UI could otherwise make a worker read any of its files); the
    command line, run by someone with a shell, may name any."""
    if not runtime.from_deployment():
        return source, named_list
    try:
        return confine_form_paths(source, named_list, runtime.form_roots())
    except ValueError as exc:
        raise UsageError(str(exc)) from None


@dataclass(frozen=True)
class _Campaign:
    """One send run's inputs, settled before its first step: what the steps below share."""

    request: pl.PlanRequest  # the campaign, the survey, the ledger, the plan's rules
    approval: approve.Approval
    source: Source
    phone_column: str | None
    opt_out_lists: list[str]
    window: DeliveryWindow
    limits: Limits
    base_url: str
    key_block: str | None
    started: float  # time.monotonic() when the run started
    witnesses: list[str] = field(default_factory=list)  # staff numbers (E.164), texted apart
    witnesses_only: bool = False  # only the witnesses are texted (the plan is a dry run)
    dry_run_asked: bool = False  # the operator's dry run: nobody is texted, witnesses neither

    @property
    def report(self) -> ReportRequest:
        r = self.request
        return ReportRequest(
            r.survey_id, r.ledger_url, self.started, r.cost_per_sms, r.ledger_outage, r.lang
        )

    def prepare(self, hold: bool, within_credits: bool = False) -> pl.Prepared:
        """Load, clean, suppress, check the credits, plan: the first failure ends it.
        ``within_credits``: the person who approved chose to send what the money covers."""
        real_gateway = (
            self.base_url == SMSPartnerClient.DEFAULT_BASE_URL and not self.request.dry_run
        )
        loaded = load_task(self.source, real_gateway=real_gateway)
        cleaned = clean_task(loaded, self.phone_column, self.window.allow_foreign)
        suppress_task(self.opt_out_lists, self.base_url, self.key_block, self.request)
        credits = check_credits_task(self.base_url, self.key_block)
        held = replace(
            self.request,
            thresholds=self.approval.thresholds if hold else None,
            send_within_credits=self.request.send_within_credits or within_credits,
        )
        return plan_task(cleaned, credits, held)


def _approved_plan(run: _Campaign) -> tuple[pl.Prepared, approve.Verdict]:
    """The plan, approved when it needs a person's yes. Short of money, nothing is sent: the
    report still accounts for every row (those the money did not cover rejected with the
    reason), and the run ends with the shortfall's line."""
    try:
        return until_approved(run.prepare, run.approval)
    except CreditsShort as short:
        if short.prepared is not None:
            progress.phase(run.request.campaign_id, Phase.reporting)
            summary = report_task(
                short.prepared, run.report, short.prepared.credits_now, 0.0, short.approval
            )
            short.summary = summary.as_json()
        raise


class _Sent(NamedTuple):
    stop: str | None  # what stopped the sends (None: nothing did)
    seconds: float
    credits_after: float | None  # for the report (None: the gateway could not tell)


def _send(run: _Campaign, prepared: pl.Prepared) -> _Sent:
    """Send the planned chunks (a dry run sends nothing), then read the credits left."""
    limits, r = run.limits, run.request
    settings = limits.send_settings(
        campaign_id=r.campaign_id,
        survey_id=r.survey_id,
        base_url=run.base_url,
        ledger_url=r.ledger_url,
        credits=credits_to_check(prepared.credits_now, prepared.to_send, limits.cost_per_sms),
        window=run.window,
        key_block=run.key_block,
        audience=r.audience,
    )
    sending = time.monotonic()
    throttle = limits.throttle(prepared.global_limit_is_rate)
    stop = send_campaign(settings, prepared.chunk_indices, throttle, limits.settle_wait_seconds)
    seconds = time.monotonic() - sending
    credits_after = (
        prepared.credits_now if prepared.dry_run else credits_task(run.base_url, run.key_block)
    )
    return _Sent(stop, seconds, credits_after)


# -- command line ------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m flows.survey_campaign",
        description="Envoyer une enquête SMS par SMS Partner.",
    )
    # The order of the options is the order --help shows them in.
    _add_source_options(p)
    p.add_argument(
        "--campaign-id", help="l'identifiant d'une campagne à reprendre ; vide : une nouvelle"
    )
    p.add_argument(
        "--dry-run", action="store_true", help="essai sans envoi : prépare et rapporte seulement"
    )
    add_model_options(p, Limits)  # --max-cost ... --global-limit, from the model
    _add_audience_options(p)
    _add_run_options(p)
    _add_window_options(p)
    args = p.parse_args(argv)
    if args.db_url and not args.query:
        p.error("--db-url needs --query")
    if args.query and not args.db_url:
        p.error("--query needs --db-url")
    return args


def _add_source_options(p: argparse.ArgumentParser) -> None:
    """The survey and where its recipients come from (a file, or a query with --db-url)."""
    p.add_argument("--survey-id", required=True, help="l'identifiant de l'enquête dans SMS Partner")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--recipients", help="le fichier CSV ou .xlsx des destinataires")
    src.add_argument(
        "--recipients-url",
        help="l'adresse du fichier des destinataires (https://, s3://, gs://, az://)",
    )
    src.add_argument("--db-url", help="l'adresse de la base de données (avec --query)")
    p.add_argument("--query", help="une requête SELECT ou un nom de table (avec --db-url)")
    p.add_argument(
        "--db-credentials-block",
        help="le bloc Secret Prefect du mot de passe de la base (par défaut : celui de "
        f"l'adresse, sinon {runtime.DB_PASSWORD_ENV})",
    )
    p.add_argument("--sheet", help="la feuille Excel (par défaut : la première)")
    p.add_argument(
        "--phone-column", help="la colonne des numéros (par défaut : trouvée d'après l'en-tête)"
    )


def _add_audience_options(p: argparse.ArgumentParser) -> None:
    """Who is asked (``Audience``): the sample, the contact-pressure rules, the witnesses, a
    survey per segment. Their names are a contract (issue 23)."""
    g = p.add_argument_group("qui interroger")
    g.add_argument(
        "--sample", metavar="TAILLE", help="un échantillon tiré au hasard : 400, ou 10%%"
    )
    g.add_argument(
        "--quota-by",
        metavar="COLONNE",
        help="répartir l'échantillon selon cette colonne (par défaut : le territoire)",
    )
    g.add_argument(
        "--quota",
        metavar="N",
        help="au plus N par valeur, ou proportional (garder les proportions de la liste)",
    )
    g.add_argument(
        "--sample-exclude-days",
        type=int,
        default=0,
        metavar="J",
        help="ne pas tirer qui a reçu une enquête depuis J jours",
    )
    g.add_argument(
        "--seed", type=int, metavar="S", help="numéro de tirage : le même redonne le même tirage"
    )
    g.add_argument(
        "--pressure-rule",
        action="append",
        default=[],
        metavar="NOM=N/JOURS[:survey]",
        help="au plus N enquêtes en JOURS jours (toutes, ou :survey cette enquête) ; répétable",
    )
    g.add_argument("--witnesses", metavar="FICHIER", help="un CSV de numéros témoins du personnel")
    g.add_argument(
        "--witnesses-only", action="store_true", help="envoyer l'enquête aux témoins seulement"
    )
    g.add_argument(
        "--survey-by", metavar="COLONNE", help="une enquête selon la valeur de cette colonne"
    )
    g.add_argument(
        "--survey-map",
        metavar="VALEUR=ENQUÊTE,...",
        help="l'enquête de chaque valeur (fr=ENQ_FR,en=ENQ_EN) ; --survey-id : les autres",
    )
    g.add_argument(
        "--no-default-survey",
        action="store_true",
        help="une valeur sans enquête arrête la campagne (par défaut : --survey-id)",
    )


def _audience(args: argparse.Namespace) -> Audience:
    return Audience(
        sample=args.sample,
        quota_by=args.quota_by,
        quota=args.quota,
        sample_exclude_days=args.sample_exclude_days,
        seed=args.seed,
        pressure_rules=args.pressure_rule,
        witnesses=args.witnesses,
        witnesses_only=args.witnesses_only,
        survey_by=args.survey_by,
        survey_map=args.survey_map,
        default_survey=not args.no_default_survey,
    )


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """Who is never texted, when a person must say yes first, the account, the reports'
    language, resuming: the form's fields the command line names its own way."""
    p.add_argument(
        "--suppression-list", help="un fichier CSV ou Excel de numéros à ne jamais contacter"
    )
    p.add_argument(
        "--approve-above-cost",
        type=float,
        metavar="EUR",
        help="s'arrêter avant tout envoi si le coût estimé dépasse ce montant (sauf --yes)",
    )
    p.add_argument(
        "--approve-above-recipients",
        type=int,
        metavar="N",
        help="s'arrêter avant tout envoi au-delà de ce nombre de destinataires (sauf --yes)",
    )
    p.add_argument(
        "--yes", action="store_true", help="accord donné d'avance : envoyer malgré les seuils"
    )
    p.add_argument("--api-key-block", help="le bloc Secret Prefect de la clé du compte SMS Partner")
    p.add_argument(
        "--send-within-credits",
        action="store_true",
        help="si les crédits ou --max-cost ne couvrent pas la campagne, envoyer ce qu'ils "
        "couvrent (par défaut : ne rien envoyer et s'arrêter)",
    )
    p.add_argument(
        "--lang", choices=LANGS, default=DEFAULT_LANG, help="langue des rapports (fr, en)"
    )
    p.add_argument(
        "--resume-changed-input",
        action="store_true",
        help="reprendre une campagne dont la liste a changé (les nouvelles lignes s'ajoutent)",
    )


def _add_window_options(p: argparse.ArgumentParser) -> None:
    """The delivery window (``DeliveryWindow``), with the command line's own names."""
    p.add_argument(
        "--window",
        choices=[w.value for w in WindowPreset],
        default="strict",
        help="; ".join(f"{w.value} : {label}" for w, label in WINDOW_LABELS.items()),
    )
    p.add_argument(
        "--no-gateway-hold", action="store_true", help="ignorer la retenue de SMS Partner"
    )
    p.add_argument(
        "--alsace-moselle", action="store_true", help="éviter aussi les fériés d'Alsace-Moselle"
    )
    p.add_argument(
        "--horizon-days",
        type=int,
        default=HORIZON_DAYS,
        help=f"programmer au plus ce nombre de jours à l'avance ({HORIZON_DAYS})",
    )
    p.add_argument(
        "--no-immediate", action="store_true", help="toujours programmer, jamais tout de suite"
    )
    p.add_argument("--allow-foreign", action="store_true", help="accepter les mobiles étrangers")


def _window(args: argparse.Namespace) -> DeliveryWindow:
    return DeliveryWindow(
        preset=WindowPreset(args.window),
        gateway_hold=not args.no_gateway_hold,
        alsace_moselle=args.alsace_moselle,
        horizon_days=args.horizon_days,
        allow_immediate=not args.no_immediate,
        allow_foreign=args.allow_foreign,
    )


def _source(args: argparse.Namespace) -> AnySource:
    if args.recipients_url is not None:
        return UrlSource(url=args.recipients_url, sheet=args.sheet, phone_column=args.phone_column)
    if args.db_url is not None:
        # Secrets leave the URL here, before the flow run (and its stored parameters) exists;
        # they reach the loader through this process's environment only.
        url, secrets = dburl.split(args.db_url)
        runtime.keep_db_credentials(secrets)
        return DatabaseSource(
            db_url=url,
            credentials_block=args.db_credentials_block,
            query=args.query,
            phone_column=args.phone_column,
        )
    kind = (
        SourceKind.excel
        if str(args.recipients).lower().endswith((".xlsx", ".xlsm"))
        else SourceKind.csv
    )
    return FileSource(
        kind=kind, path=args.recipients, sheet=args.sheet, phone_column=args.phone_column
    )


def _not_found(typed: str) -> str:
    """A recipients file that is not there, and what to do (a path of a Windows computer, typed
    on the server, is the usual case)."""
    if re.match(r"^\s*(?:[A-Za-z]:[\\/]|\\\\)", typed):
        return windows_path_refusal(typed)
    return f"fichier des destinataires introuvable : {typed} (vérifiez le chemin et le nom)"


def _problems(exc: ValidationError) -> str:
    """Pydantic's errors in one line: ``field: what is wrong``, separated by semicolons."""
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or 'valeur'} : {e['msg'].removeprefix('Value error, ')}"
        for e in exc.errors()
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.campaign_id is not None:  # an empty id is a mistake, not "a new campaign"
            pl.validate_campaign_id(args.campaign_id)
        window = _window(args)
        limits = model_from_args(Limits, args)
        audience = _audience(args)
        source = _source(args)
    except ValidationError as exc:
        print(f"error: option invalide : {_problems(exc)}", file=sys.stderr)
        return 2
    except (pl.CampaignError, ValueError) as exc:  # dburl.DbUrlError is a ValueError
        print(f"error: {one_line(exc, type(exc).__name__)}", file=sys.stderr)
        return 2
    if args.recipients and not Path(args.recipients).is_file():
        print(f"error: {_not_found(args.recipients)}", file=sys.stderr)
        return 2
    with progress.terminal_bar():
        state = send_survey_campaign(
            survey_id=args.survey_id,
            recipients=source,
            campaign_id=args.campaign_id,
            dry_run=args.dry_run,
            window=window,
            limits=limits,
            suppression_list=args.suppression_list,
            audience=audience,
            approve_above_cost=args.approve_above_cost,
            approve_above_recipients=args.approve_above_recipients,
            approval_mode=approve.ApprovalMode.approved if args.yes else approve.ApprovalMode.stop,
            api_key_block=args.api_key_block,
            resume_changed_input=args.resume_changed_input,
            send_within_credits=args.send_within_credits,
            lang=args.lang,
            return_state=True,
        )
    if state.is_completed() and isinstance(summary := state.result(), dict):
        print_result(summary, args.lang, "send")
        return 0
    return failure_exit(state, "campagne en échec", lang=args.lang, kind="send")


if __name__ == "__main__":
    sys.exit(main())
