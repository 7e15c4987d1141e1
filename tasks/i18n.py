"""What people read, in French (the default) or English: texts, numbers, money, dates, places.

Dates, numbers and currencies come from Babel (CLDR data), never from the machine's locale nor
from hand-written month names. Texts come from one small catalog; machine-readable output
(summary keys, JSON, CSV column names, reason codes) is never translated.

Time-zone labels ("heure de La Réunion") are a small table: Babel's exemplar cities are right
for most zones, but French needs the article ("heure des Marquises", "heure de La Réunion"),
which CLDR does not give. Zones outside the table fall back on Babel's city name.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal, get_args
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_datetime, get_timezone_location
from babel.numbers import format_currency, format_decimal, format_percent

Lang = Literal["fr", "en"]
LANGS: tuple[Lang, ...] = get_args(Lang)
DEFAULT_LANG: Lang = "fr"

_LOCALES: dict[str, str] = {"fr": "fr_FR", "en": "en_GB"}
_PERCENT = {"fr": "#,##0.0\u202f%", "en": "#,##0.0%"}

# The one list of territory names (compliance.md section 4). GP numbers (+590) also cover
# Saint-Barthélemy and Saint-Martin, which cannot be told apart from the number.
TERRITORY_NAMES: dict[str, dict[str, str]] = {
    "FR": {"fr": "France métropolitaine", "en": "Metropolitan France"},
    "GP": {"fr": "Guadeloupe", "en": "Guadeloupe"},
    "MQ": {"fr": "Martinique", "en": "Martinique"},
    "GF": {"fr": "Guyane", "en": "French Guiana"},
    "RE": {"fr": "La Réunion", "en": "Réunion"},
    "YT": {"fr": "Mayotte", "en": "Mayotte"},
    "PM": {"fr": "Saint-Pierre-et-Miquelon", "en": "Saint Pierre and Miquelon"},
    "NC": {"fr": "Nouvelle-Calédonie", "en": "New Caledonia"},
    "PF": {"fr": "Polynésie française", "en": "French Polynesia"},
    "WF": {"fr": "Wallis-et-Futuna", "en": "Wallis and Futuna"},
    "unknown": {"fr": "inconnu", "en": "unknown"},
}

_ZONE_LABELS: dict[str, dict[str, str]] = {
    "Europe/Paris": {"fr": "heure de Paris", "en": "Paris time"},
    "America/Guadeloupe": {"fr": "heure de la Guadeloupe", "en": "Guadeloupe time"},
    "America/Martinique": {"fr": "heure de la Martinique", "en": "Martinique time"},
    "America/Cayenne": {"fr": "heure de Cayenne", "en": "Cayenne time"},
    "Indian/Reunion": {"fr": "heure de La Réunion", "en": "Réunion time"},
    "Indian/Mayotte": {"fr": "heure de Mayotte", "en": "Mayotte time"},
    "America/Miquelon": {"fr": "heure de Saint-Pierre", "en": "Saint-Pierre time"},
    "Pacific/Noumea": {"fr": "heure de Nouméa", "en": "Nouméa time"},
    "Pacific/Tahiti": {"fr": "heure de Tahiti", "en": "Tahiti time"},
    "Pacific/Marquesas": {"fr": "heure des Marquises", "en": "Marquesas time"},
    "Pacific/Gambier": {"fr": "heure des Gambier", "en": "Gambier time"},
    "Pacific/Wallis": {"fr": "heure de Wallis", "en": "Wallis time"},
}

# key -> {"fr": ..., "en": ...}; ``{name}`` fields are filled by text(). Both languages of a key
# take the same fields (a test checks it).
CATALOG: dict[str, dict[str, str]] = {
    "unknown": {"fr": "inconnu", "en": "unknown"},
    # French typography puts a space before ":" and ";"
    "sep.colon": {"fr": " : ", "en": ": "},
    "sep.list": {"fr": " ; ", "en": "; "},
    "none_yet": {"fr": "aucun pour l'instant", "en": "none yet"},
    # outcomes and delivery statuses
    "outcome.sent": {"fr": "envoyés", "en": "sent"},
    "outcome.failed": {"fr": "en échec", "en": "failed"},
    "outcome.rejected": {"fr": "rejetés", "en": "rejected"},
    "status.delivered": {"fr": "délivrés", "en": "delivered"},
    "status.not_delivered": {"fr": "non délivrés", "en": "not delivered"},
    "status.waiting": {"fr": "en attente", "en": "waiting"},
    "status.other": {"fr": "autre / sans statut", "en": "other / no status"},
    # chunk states in the ledger
    "state.pending": {"fr": "à envoyer", "en": "pending"},
    "state.sending": {"fr": "en cours d'envoi", "en": "sending"},
    "state.sent": {"fr": "envoyés", "en": "sent"},
    "state.failed": {"fr": "en échec", "en": "failed"},
    "state.in_doubt": {"fr": "incertains", "en": "in doubt"},
    "state.cancelled": {"fr": "annulés", "en": "cancelled"},
    # reject and failure reasons (README "Reasons")
    "reason.empty": {"fr": "cellule vide", "en": "blank cell"},
    "reason.not_a_number": {"fr": "pas un numéro", "en": "not a number"},
    "reason.multiple_numbers": {"fr": "plusieurs numéros", "en": "several numbers"},
    "reason.invalid": {"fr": "numéro invalide", "en": "invalid number"},
    "reason.not_mobile": {"fr": "pas un mobile", "en": "not a mobile"},
    "reason.foreign": {"fr": "mobile étranger", "en": "foreign mobile"},
    "reason.duplicate": {"fr": "doublon", "en": "duplicate"},
    "reason.opted_out": {"fr": "désinscrit par STOP", "en": "opted out by STOP"},
    "reason.recently_surveyed": {"fr": "déjà sondé récemment", "en": "surveyed recently"},
    "reason.no_slot": {"fr": "aucun créneau autorisé", "en": "no allowed slot"},
    "reason.gateway_rejected": {"fr": "refusé par la passerelle", "en": "refused by the gateway"},
    "reason.dry_run": {"fr": "simulation (non envoyé)", "en": "dry run (not sent)"},
    "reason.budget_exceeded": {"fr": "budget dépassé", "en": "budget exceeded"},
    "reason.insufficient_credits": {"fr": "crédits insuffisants", "en": "insufficient credits"},
    "reason.gateway_error": {"fr": "erreur de la passerelle", "en": "gateway error"},
    "reason.gateway_unavailable": {
        "fr": "passerelle indisponible",
        "en": "gateway unavailable",
    },
    "reason.in_doubt": {"fr": "envoi incertain", "en": "send in doubt"},
    "reason.cancelled": {"fr": "campagne annulée", "en": "campaign cancelled"},
    # the campaign summary
    "campaign.title": {"fr": "Campagne d'enquête {campaign}", "en": "Survey campaign {campaign}"},
    "campaign.dry_run": {"fr": " (simulation)", "en": " (dry run)"},
    "campaign.loaded": {
        "fr": "Enquête {survey} : {rows} lignes chargées en {seconds} s.",
        "en": "Survey {survey} - {rows} rows loaded in {seconds} s.",
    },
    "col.outcome": {"fr": "résultat", "en": "outcome"},
    "col.rows": {"fr": "lignes", "en": "rows"},
    "col.rejected_because": {"fr": "rejetées car", "en": "rejected because"},
    "col.failed_because": {"fr": "en échec car", "en": "failed because"},
    "col.reason": {"fr": "motif", "en": "reason"},
    "col.territory": {"fr": "territoire", "en": "territory"},
    "col.state": {"fr": "état", "en": "state"},
    "col.chunks": {"fr": "lots", "en": "chunks"},
    "col.status": {"fr": "statut", "en": "status"},
    "col.recipients": {"fr": "destinataires", "en": "recipients"},
    "col.share": {"fr": "part", "en": "share"},
    "slots.heading": {"fr": "Créneaux d'envoi", "en": "Delivery slots"},
    "slots.nothing": {"fr": "rien à planifier", "en": "nothing to plan"},
    "cost.heading": {"fr": "Coût", "en": "Cost"},
    "cost.line": {"fr": "SMS : {sms}, coût : {cost}", "en": "SMS: {sms}, cost: {cost}"},
    "cost.partly_estimated": {"fr": " (en partie estimé)", "en": " (partly estimated)"},
    "cost.estimated": {
        "fr": "coût estimé si envoyé : {cost}",
        "en": "estimated cost if sent: {cost}",
    },
    "cost.credits": {
        "fr": "crédits avant : {before}, après : {after}",
        "en": "credits before: {before}, after: {after}",
    },
    "rejects.examples": {
        "fr": "Exemples de numéros rejetés (masqués) :",
        "en": "Examples of rejected numbers (masked):",
    },
    "report.full": {"fr": "Rapport complet : {path}", "en": "Full report: {path}"},
    # slot sentences (rendered from the summary's slot_plan)
    "slot.at_once": {
        "fr": "envoi immédiat (fenêtre d'envoi ouverte)",
        "en": "sent at once (sending window open)",
    },
    "slot.scheduled": {"fr": "envoi programmé {when}", "en": "scheduled for {when}"},
    "slot.paris_too": {"fr": "{local}, soit {paris}", "en": "{local}, i.e. {paris}"},
    "slot.none": {
        "fr": "aucun créneau autorisé dans l'horizon de planification : non envoyé (no_slot)",
        "en": "no allowed slot within the planning horizon: not sent (no_slot)",
    },
    "slot.cancelled": {"fr": "envoi annulé", "en": "sending cancelled"},
    "slot.foreign": {
        "fr": "numéros étrangers ({code}) : fenêtre de Paris",
        "en": "foreign numbers ({code}): Paris window",
    },
    # the HTML report
    "html.survey": {"fr": "Enquête", "en": "Survey"},
    "html.loaded": {"fr": "Lignes chargées", "en": "Rows loaded"},
    "html.sent": {"fr": "Envoyés", "en": "Sent"},
    "html.failed": {"fr": "En échec", "en": "Failed"},
    "html.rejected": {"fr": "Rejetés", "en": "Rejected"},
    "html.sms": {"fr": "SMS facturés", "en": "SMS billed"},
    "html.cost": {"fr": "Coût", "en": "Cost"},
    "html.credits": {"fr": "Crédits avant / après", "en": "Credits before / after"},
    "html.estimated": {"fr": "Coût estimé si envoyé", "en": "Estimated cost if sent"},
    "html.delivery_when": {"fr": "Envoi", "en": "Delivery"},
    "html.at_once": {"fr": "immédiat", "en": "at once"},
    "html.scheduled": {"fr": "programmé : {slots}", "en": "scheduled: {slots}"},
    "html.run_time": {"fr": "Durée d'exécution", "en": "Run time"},
    "html.seconds": {"fr": "{seconds} s", "en": "{seconds} s"},
    "html.outcomes": {"fr": "Résultats", "en": "Outcomes"},
    "html.by_outcome": {"fr": "Destinataires par résultat", "en": "Recipients by outcome"},
    "html.by_reason": {"fr": "Lignes rejetées par motif", "en": "Rejected rows by reason"},
    "html.failed_because": {"fr": "En échec car :", "en": "Failed because:"},
    "html.territories": {"fr": "Territoires", "en": "Territories"},
    "html.by_territory": {
        "fr": "Destinataires par territoire et résultat",
        "en": "Recipients by territory and outcome",
    },
    "html.chunks": {"fr": "Appels à l'API (lots)", "en": "API calls (chunks)"},
    "html.nothing": {"fr": "Rien à représenter.", "en": "Nothing to chart."},
    "html.delivery": {"fr": "Remise des SMS", "en": "Delivery"},
    "html.delivery_note": {
        "fr": "{chunks} lots envoyés vérifiés le {checked}. Dernier statut reçu de la "
        "passerelle : {latest}. Les accusés de réception peuvent arriver jusqu'à 48 h après.",
        "en": "{chunks} sent chunks checked on {checked}. Latest status from the gateway: "
        "{latest}. Delivery reports can take up to 48 h.",
    },
    "html.by_status": {
        "fr": "Destinataires par statut de remise",
        "en": "Recipients by delivery status",
    },
    "html.status_by_territory": {
        "fr": "Statut de remise par territoire",
        "en": "Delivery status by territory",
    },
    "stops.summary": {
        "fr": "Réponses STOP : {stops} ; nouvelles dans la liste d'opposition : {added}. Ces "
        "personnes ne recevront plus aucun SMS.",
        "en": "STOP replies: {stops}; new to the never-text list: {added}. These people will "
        "not be texted again.",
    },
    "stops.more": {"fr": "... et {n} de plus", "en": "... and {n} more"},
    "html.problems": {"fr": "Problèmes :", "en": "Problems:"},
    "html.footer": {
        "fr": "Agrégats seulement ; les numéros sont masqués. Les rejets complets sont dans "
        "rejects.csv et rejects.xlsx, à côté de ce fichier.",
        "en": "Aggregates only; phone numbers are masked. Full rejects are in rejects.csv and "
        "rejects.xlsx next to this file.",
    },
    # the approval form (tasks/approval.py)
    "approval.title": {
        "fr": "Campagne {campaign} : approbation requise avant tout envoi",
        "en": "Campaign {campaign}: approval needed before any send",
    },
    "approval.why": {"fr": "Seuil dépassé : {reasons}.", "en": "Threshold passed: {reasons}."},
    "approval.item": {"fr": "Ce qui serait envoyé", "en": "What would be sent"},
    "approval.recipients": {"fr": "Destinataires", "en": "Recipients"},
    "approval.sms_estimated": {
        "fr": "SMS (estimation, 1 par destinataire)",
        "en": "SMS (estimate, 1 each)",
    },
    "approval.estimated_cost": {"fr": "Coût estimé", "en": "Estimated cost"},
    "approval.credits": {"fr": "Crédits du compte", "en": "Account credits"},
    "approval.budget_cap": {"fr": "Plafond de budget", "en": "Budget cap"},
    "approval.territory": {"fr": "Territoire", "en": "Territory"},
    "approval.slot": {"fr": "Créneau", "en": "Slot"},
    "approval.now": {"fr": "tout de suite", "en": "at once"},
    "approval.none": {"fr": "aucun", "en": "none"},
    "approval.heading": {"fr": "**Approbation** : ", "en": "**Approval**: "},
    "approval.decision_approved": {"fr": "approuvée", "en": "approved"},
    "approval.decision_refused": {
        "fr": "refusée, rien n'a été envoyé",
        "en": "refused, nothing sent",
    },
    "approval.decision_timed_out": {
        "fr": "sans réponse dans le délai, rien n'a été envoyé",
        "en": "not answered in time, nothing sent",
    },
    "approval.decision_stopped": {
        "fr": "requise (ligne de commande sans --yes), rien n'a été envoyé",
        "en": "needed (command line without --yes), nothing sent",
    },
    "approval.over_cost": {
        "fr": "coût estimé {cost}, au-dessus de {limit}",
        "en": "estimated cost {cost}, above {limit}",
    },
    "approval.over_recipients": {
        "fr": "{n} destinataires, au-dessus de {limit}",
        "en": "{n} recipients, above {limit}",
    },
    "approval.how": {
        "fr": "Pour envoyer : **Resume**, cochez « Approuver l'envoi », ajoutez un commentaire. "
        "Sans coche, la campagne est refusée et rien n'est envoyé ; sans réponse sous {hours} h, "
        "rien n'est envoyé.",
        "en": "To send: **Resume**, tick 'Approve the send', add a comment. Unticked, the "
        "campaign is refused and nothing is sent; without an answer within {hours} h, nothing "
        "is sent.",
    },
    # money first (tasks/money.py, tasks/steps/prepare.py, the approval form): the line that stops
    # a campaign its credits or its budget cap do not cover, and the form's warning
    "money.short_credits": {
        "fr": "Crédits insuffisants : il manque {shortfall} pour {n} destinataires (crédits "
        "{credits}, coût estimé {cost} ; de quoi en envoyer {covered}).",
        "en": "Not enough credits: {shortfall} missing for {n} recipients (credits {credits}, "
        "estimated cost {cost}; enough for {covered}).",
    },
    "money.short_budget": {
        "fr": "Plafond de budget insuffisant : il manque {shortfall} pour {n} destinataires "
        "(plafond {cap}, déjà dépensé {spent}, coût estimé {cost} ; de quoi en envoyer "
        "{covered}).",
        "en": "Budget cap too low: {shortfall} missing for {n} recipients (cap {cap}, already "
        "spent {spent}, estimated cost {cost}; enough for {covered}).",
    },
    "money.nothing_sent": {"fr": "Rien n'a été envoyé.", "en": "Nothing was sent."},
    "money.next_credits_ui": {
        "fr": "Rechargez le compte SMS Partner, réduisez la liste, ou cochez « Envoyer ce que "
        "les crédits permettent ».",
        "en": "Top up the SMS Partner account, shorten the list, or tick 'Send what the "
        "credits allow'.",
    },
    "money.next_credits_cli": {
        "fr": "Rechargez le compte SMS Partner, réduisez la liste, ou relancez avec "
        "--send-within-credits.",
        "en": "Top up the SMS Partner account, shorten the list, or run again with "
        "--send-within-credits.",
    },
    "money.next_budget_ui": {
        "fr": "Relevez le plafond de budget, réduisez la liste, ou cochez « Envoyer ce que les "
        "crédits permettent ».",
        "en": "Raise the budget cap, shorten the list, or tick 'Send what the credits allow'.",
    },
    "money.next_budget_cli": {
        "fr": "Relevez --max-cost, réduisez la liste, ou relancez avec --send-within-credits.",
        "en": "Raise --max-cost, shorten the list, or run again with --send-within-credits.",
    },
    "money.within_credits": {
        "fr": "Envoi dans la limite des crédits : {sending} destinataires sur {n} ; {left} ne "
        "sont pas envoyés (crédits insuffisants). Rechargez le compte SMS Partner, puis "
        "relancez la campagne {campaign} pour eux.",
        "en": "Sending what the credits allow: {sending} recipients out of {n}; {left} are not "
        "sent (insufficient credits). Top up the SMS Partner account, then run campaign "
        "{campaign} again for them.",
    },
    "money.within_budget": {
        "fr": "Envoi dans la limite du plafond de budget : {sending} destinataires sur {n} ; "
        "{left} ne sont pas envoyés (budget dépassé). Relevez le plafond, puis relancez la "
        "campagne {campaign} pour eux.",
        "en": "Sending what the budget cap allows: {sending} recipients out of {n}; {left} are "
        "not sent (budget exceeded). Raise the cap, then run campaign {campaign} again for "
        "them.",
    },
    "money.form_choice": {
        "fr": "Approuver sans cocher « Envoyer ce que les crédits permettent » n'envoie rien. "
        "Cochez les deux pour n'envoyer qu'aux {covered} premiers destinataires : les autres ne "
        "seront pas envoyés.",
        "en": "Approving without ticking 'Send what the credits allow' sends nothing. Tick both "
        "to text the first {covered} recipients only: the others will not be sent.",
    },
    "money.form_within": {
        "fr": "« Envoyer ce que les crédits permettent » a été coché au lancement : approuver "
        "n'envoie qu'à {sending} destinataires, les {left} autres ne seront pas envoyés.",
        "en": "'Send what the credits allow' was ticked at launch: approving texts {sending} "
        "recipients only; the other {left} will not be sent.",
    },
    "money.also_approval": {
        "fr": "Une approbation est aussi requise ({why}) : ajoutez --yes.",
        "en": "Approval is needed too ({why}): add --yes.",
    },
    # the cancel flow's markdown (tasks/cancellation.py)
    "cancel.title": {
        "fr": "Annulation de la campagne `{campaign}`",
        "en": "Cancelling campaign `{campaign}`",
    },
    "cancel.spared": {
        "fr": "Le {at} : {n} destinataires ne recevront pas le SMS grâce à cette annulation.",
        "en": "On {at}: {n} recipients will not be texted because of this cancellation.",
    },
    "cancel.outcome": {"fr": "résultat", "en": "outcome"},
    "cancel.cancelled": {"fr": "annulés à la passerelle", "en": "cancelled at the gateway"},
    "cancel.already_cancelled": {"fr": "déjà annulés", "en": "already cancelled"},
    "cancel.too_late": {
        "fr": "trop tard (5 minutes ou moins avant le créneau)",
        "en": "too late (5 minutes or less before the slot)",
    },
    "cancel.already_sent": {"fr": "déjà envoyés", "en": "already sent"},
    "cancel.not_found": {"fr": "introuvables à la passerelle", "en": "not found at the gateway"},
    "cancel.not_sent_cancelled": {
        "fr": "jamais envoyés : annulés dans le registre",
        "en": "never sent: cancelled in the ledger",
    },
    "cancel.in_progress": {
        "fr": "en cours d'envoi par un autre run",
        "en": "being sent by another run",
    },
    "cancel.chunks": {"fr": "lots", "en": "chunks"},
    "cancel.kept": {"fr": "Non annulés", "en": "Not cancelled"},
    "cancel.chunk": {"fr": "lot", "en": "chunk"},
    "cancel.territory": {"fr": "territoire", "en": "territory"},
    "cancel.slot": {"fr": "créneau", "en": "slot"},
    "cancel.recipients": {"fr": "destinataires", "en": "recipients"},
    "cancel.why": {"fr": "pourquoi", "en": "why"},
    "cancel.at_once": {"fr": "tout de suite", "en": "at once"},
    "cancel.more": {"fr": "{n} de plus dans cancel.json", "en": "{n} more in cancel.json"},
    # the flows' closing log lines
    "log.campaign_summary": {
        "fr": "campagne {campaign} : {sent} envoyés, {failed} en échec, {rejected} rejetés ; "
        "coût {cost}",
        "en": "campaign {campaign}: {sent} sent, {failed} failed, {rejected} rejected; cost {cost}",
    },
    "log.follow_up_summary": {
        "fr": "{campaign} : {delivered} délivrés, {not_delivered} non délivrés, {waiting} en "
        "attente, {other} autres ; {stops} STOP ajoutés à la liste d'opposition",
        "en": "{campaign}: delivered {delivered}, not delivered {not_delivered}, waiting "
        "{waiting}, other {other}; {stops} STOP added",
    },
    "log.cancel_summary": {
        "fr": "{cancelled} lots annulés, {not_cancelled} non annulés (voir l'artefact) ; "
        "{spared} destinataires épargnés",
        "en": "{cancelled} chunks cancelled, {not_cancelled} not (see the artifact); "
        "{spared} recipients spared",
    },
    # artifact descriptions and link texts (for the flows)
    "artifact.summary": {"fr": "Résumé de la campagne d'enquête", "en": "Survey campaign summary"},
    "artifact.summary_delivery": {
        "fr": "Résumé de la campagne d'enquête, avec la remise",
        "en": "Survey campaign summary, with delivery",
    },
    "artifact.chunks": {"fr": "Un appel à l'API par ligne", "en": "One row per API call"},
    "artifact.cancel": {
        "fr": "Ce que l'annulation de la campagne a fait",
        "en": "What cancelling the campaign did",
    },
    "artifact.approval": {
        "fr": "Ce que la campagne enverrait, en attente d'approbation",
        "en": "What the campaign would send, waiting for approval",
    },
    "artifact.nothing_sent": {"fr": "rien d'envoyé", "en": "nothing sent"},
    "artifact.delivery": {
        "fr": "Statuts de remise par territoire",
        "en": "Delivery statuses by territory",
    },
    "artifact.report_link": {
        "fr": "Rapport {page} (summary.json, chunks.csv/.xlsx, rejects.csv/.xlsx à côté)",
        "en": "Report {page} (summary.json, chunks.csv/.xlsx, rejects.csv/.xlsx beside it)",
    },
    # the follow-up's markdown
    "delivery.title": {
        "fr": "Remise des SMS de la campagne {campaign}",
        "en": "Delivery of campaign {campaign}",
    },
    "delivery.checked": {
        "fr": "{chunks} lots envoyés vérifiés le {checked} ; dernier statut reçu de la "
        "passerelle : {latest}.",
        "en": "{chunks} sent chunks checked on {checked}; latest status from the gateway: "
        "{latest}.",
    },
    "delivery.stops_heading": {"fr": "Réponses STOP", "en": "STOP replies"},
    "delivery.stops": {
        "fr": "Réponses STOP : {stops} ; nouvelles dans la liste d'opposition : {added}. Ces "
        "personnes ne recevront plus aucun SMS.",
        "en": "STOP replies: {stops}; new to the never-text list: {added}. These people will "
        "not be texted again.",
    },
    "delivery.no_stops": {
        "fr": "Aucun destinataire n'a répondu STOP.",
        "en": "No recipient replied STOP.",
    },
    "delivery.problems": {"fr": "Problèmes", "en": "Problems"},
    # progress while a campaign runs (tasks/progress.py, tasks/steps/progress.py): the run's
    # progress artifact, its log lines and the command line's bar. chunks.<CLDR plural form of
    # n>: fr says "0 lot", and "1 000 000 de lots".
    # The phase and count come first: the run page's artifact card cuts the line at ~45 signs.
    "progress.line": {"fr": "{what} — campagne {cid}", "en": "{what} — campaign {cid}"},
    "progress.phase.preparing": {"fr": "préparation", "en": "preparing"},
    "progress.phase.sending": {"fr": "envoi", "en": "sending"},
    "progress.phase.settling": {"fr": "vérification des envois", "en": "checking sends in doubt"},
    "progress.phase.reporting": {"fr": "rapport", "en": "report"},
    "progress.chunks.one": {"fr": "{n} lot", "en": "{n} chunk"},
    "progress.chunks.many": {"fr": "{n} de lots", "en": "{n} chunks"},
    "progress.chunks.other": {"fr": "{n} lots", "en": "{n} chunks"},
    "progress.out_of": {"fr": "{done} sur {total}", "en": "{done} out of {total}"},
    "progress.elapsed": {"fr": "(depuis {time})", "en": "({time} so far)"},
    "progress.started": {
        "fr": "Campagne {cid} — début de l'étape « {phase} »",
        "en": "Campaign {cid} — step “{phase}” started",
    },
    "progress.over": {"fr": "exécution terminée en {time}", "en": "run finished in {time}"},
    "progress.stopped": {
        "fr": "exécution arrêtée pendant l'étape « {phase} »",
        "en": "run stopped during the “{phase}” step",
    },
    # how a send run ends (flows/ending.py): the state message of an incomplete campaign
    "end.not_sent_one": {"fr": "{n} destinataire non envoyé", "en": "{n} recipient not sent"},
    "end.not_sent_many": {"fr": "{n} destinataires non envoyés", "en": "{n} recipients not sent"},
    "end.next.insufficient_credits": {
        "fr": "Rechargez le compte SMS Partner, puis relancez la campagne {campaign}.",
        "en": "Top up the SMS Partner account, then run campaign {campaign} again.",
    },
    "end.next.budget_exceeded": {
        "fr": "Relevez le coût maximal de la campagne, puis relancez la campagne {campaign}.",
        "en": "Raise the campaign's maximum cost, then run campaign {campaign} again.",
    },
    "end.next.in_doubt": {
        "fr": "Le suivi quotidien dira s'ils sont partis ; ou relancez la campagne {campaign} "
        "(personne ne reçoit deux fois le SMS).",
        "en": "The daily follow-up will tell whether they left; or run campaign {campaign} "
        "again (nobody gets the SMS twice).",
    },
    "end.next.retry": {
        "fr": "Relancez la campagne {campaign} plus tard (personne ne reçoit deux fois le SMS).",
        "en": "Run campaign {campaign} again later (nobody gets the SMS twice).",
    },
    "end.next.cancelled": {
        "fr": "La campagne {campaign} a été annulée : rien d'autre à faire.",
        "en": "Campaign {campaign} was cancelled: nothing else to do.",
    },
    "end.next.other": {
        "fr": "Lisez le rapport, puis relancez la campagne {campaign}.",
        "en": "Read the report, then run campaign {campaign} again.",
    },
    "end.stopped": {"fr": "envoi arrêté", "en": "sending stopped"},
    "end.next.fix": {
        "fr": "Corrigez la cause, puis relancez la campagne {campaign} (personne ne reçoit deux "
        "fois le SMS).",
        "en": "Fix the cause, then run campaign {campaign} again (nobody gets the SMS twice).",
    },
    # the report follows the campaign (tasks/steps/report.py, tasks/reporting/,
    # the cancel and follow-up flows)
    "slot.some_cancelled": {"fr": "le reste annulé", "en": "the rest cancelled"},
    "html.cancelled_chunks": {"fr": "lots annulés : {n}", "en": "chunks cancelled: {n}"},
    "summary.chunks": {"fr": "Lots : {states}.", "en": "Chunks: {states}."},
    "error.unknown_campaign": {
        "fr": "campagne inconnue : {campaign} n'est pas dans le registre ; vérifiez "
        "l'identifiant de la campagne",
        "en": "unknown campaign id {campaign} in the ledger; check the campaign id",
    },
    "error.report_unwritten": {
        "fr": "rapport non écrit dans {folder} ({why}) ; libérez de la place (ou rétablissez "
        "le dossier), puis relancez la même commande",
        "en": "cannot write the report in {folder} ({why}); free some space (or restore the "
        "folder), then run the same command again",
    },
    "log.report_refreshed": {
        "fr": "Rapport de la campagne {campaign} mis à jour : {sent} envoyés, {cancelled} "
        "annulés, coût {cost}",
        "en": "Report of campaign {campaign} updated: {sent} sent, {cancelled} cancelled, "
        "cost {cost}",
    },
    "log.report_not_refreshed": {
        "fr": "Le rapport de la campagne {campaign} n'a pas été mis à jour : {folder} ne garde "
        "pas ses lignes (rapport d'une version antérieure, ou lignes purgées) ; relancez la "
        "campagne pour le refaire (personne ne reçoit deux fois le SMS)",
        "en": "The report of campaign {campaign} was not updated: {folder} does not keep its "
        "rows (a report of an earlier version, or rows purged); run the campaign again to "
        "remake it (nobody gets the SMS twice)",
    },
}


def _lang(lang: str) -> Lang:
    if lang not in LANGS:
        raise ValueError(f"unknown language {lang!r}: expected one of {', '.join(LANGS)}")
    return lang  # type: ignore[return-value]


def text(lang: Lang, key: str, **values: object) -> str:
    """The catalog's text for ``key`` in ``lang``, its ``{fields}`` filled from ``values``."""
    return CATALOG[key][_lang(lang)].format(**values)


def label(lang: Lang, group: str, code: str) -> str:
    """A code's words (``label("fr", "reason", "duplicate")`` is "doublon"); the code itself
    when the catalog does not know it, so a new reason still shows."""
    entry = CATALOG.get(f"{group}.{code}")
    return entry[_lang(lang)] if entry else code


def number(n: float | int | Decimal, lang: Lang) -> str:
    """``1 234 567`` (fr, with the narrow no-break space CLDR gives) or ``1,234,567`` (en)."""
    return format_decimal(n, locale=_LOCALES[_lang(lang)])


def percent(ratio: float, lang: Lang) -> str:
    """``12,5 %`` (fr) or ``12.5%`` (en) for 0.125."""
    return format_percent(ratio, _PERCENT[_lang(lang)], locale=_LOCALES[lang])


def money(amount: float | None, currency: str, lang: Lang) -> str:
    """``1 234,50 €`` (fr) or ``€1,234.50`` (en); "inconnu" / "unknown" for None.

    Never rounded to cents: an SMS costs fractions of a cent (0,045 €). Amounts are taken to
    four decimals, the precision of the summary.
    """
    if amount is None:
        return text(lang, "unknown")
    value = Decimal(str(round(float(amount), 4))).normalize()
    return format_currency(
        value, currency or "EUR", locale=_LOCALES[_lang(lang)], decimal_quantization=False
    )


def zone_label(tz: str, lang: Lang) -> str:
    """ "heure de La Réunion" / "Réunion time" (Babel's city name for zones outside the table)."""
    known = _ZONE_LABELS.get(tz)
    if known:
        return known[_lang(lang)]
    city = get_timezone_location(tz, locale=_LOCALES[_lang(lang)], return_city=True)
    return f"heure : {city}" if lang == "fr" else f"{city} time"


def when(moment: datetime, tz: str, lang: Lang) -> str:
    """ "mardi 7 janvier 10:00 (heure de Paris)" / "Tuesday 7 January 10:00 (Paris time)"."""
    if moment.tzinfo is None:
        raise ValueError("when() needs a timezone-aware datetime")
    shown = format_datetime(
        moment, "EEEE d MMMM HH:mm", tzinfo=ZoneInfo(tz), locale=_LOCALES[_lang(lang)]
    )
    return f"{shown} ({zone_label(tz, lang)})"


def territory_name(code: str, lang: Lang) -> str:
    """ "La Réunion", "France métropolitaine"...; a foreign region's CLDR name ("Belgique");
    the code itself when nothing knows it."""
    known = TERRITORY_NAMES.get(code)
    if known:
        return known[_lang(lang)]
    found = Locale.parse(_LOCALES[_lang(lang)]).territories.get(code)
    return str(found) if found else code


def territory_cell(code: str, lang: Lang) -> str:
    """ "La Réunion (RE)" in a table; rows without a territory are just "inconnu"."""
    name = territory_name(code, lang)
    return name if code == "unknown" or name == code else f"{name} ({code})"


__all__ = [
    "CATALOG",
    "DEFAULT_LANG",
    "LANGS",
    "TERRITORY_NAMES",
    "Lang",
    "label",
    "money",
    "number",
    "percent",
    "territory_cell",
    "territory_name",
    "text",
    "when",
    "zone_label",
]
