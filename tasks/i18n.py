"""What people read, in French (the default) or English: texts, numbers, money, dates, places.

Dates, numbers and currencies come from Babel (CLDR data), never from the machine's locale nor
from hand-written month names. Texts come from one small catalog; machine-readable output
(summary keys, JSON, CSV column names, reason codes) is never translated.

Time-zone labels ("heure de La Réunion") are a small table: Babel's exemplar cities are right
for most zones, but French needs the article ("heure des Marquises", "heure de La Réunion"),
which CLDR does not give. Zones outside the table fall back on Babel's city name.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
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
    "reason.not_sampled": {"fr": "non tiré dans l'échantillon", "en": "not drawn in the sample"},
    "reason.undeliverable": {
        "fr": "numéro qui ne reçoit plus les SMS",
        "en": "number no longer reached",
    },
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
        "fr": "Enquête {survey} : {rows} en {seconds} s.",
        "en": "Survey {survey} - {rows} in {seconds} s.",
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
        "fr": "{chunks} le {checked}. Dernier statut reçu de la passerelle : {latest}. Les "
        "accusés de réception peuvent arriver jusqu'à 48 h après.",
        "en": "{chunks} on {checked}. Latest status from the gateway: {latest}. Delivery "
        "reports can take up to 48 h.",
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
    # the approval line of the campaign's summary (tasks/steps/report.py); the approval form's
    # words are in tasks/approval.py (TEXTS)
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
    # money first (tasks/money.py, tasks/steps/prepare.py, the approval form): the line that stops
    # a campaign its credits or its budget cap do not cover, and the form's warning
    # {n}: a plural("count.recipients", n) phrase ("1 destinataire")
    "money.short_credits": {
        "fr": "Crédits insuffisants : il manque {shortfall} pour {n} (crédits {credits}, coût "
        "estimé {cost} ; de quoi en envoyer {covered}).",
        "en": "Not enough credits: {shortfall} missing for {n} (credits {credits}, estimated "
        "cost {cost}; enough for {covered}).",
    },
    "money.short_budget": {
        "fr": "Plafond de budget insuffisant : il manque {shortfall} pour {n} (plafond {cap}, "
        "déjà dépensé {spent}, coût estimé {cost} ; de quoi en envoyer {covered}).",
        "en": "Budget cap too low: {shortfall} missing for {n} (cap {cap}, already spent "
        "{spent}, estimated cost {cost}; enough for {covered}).",
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
    # {sending}: a plural("count.recipients", n) phrase
    "money.within_credits": {
        "fr": "Envoi dans la limite des crédits : {sending} sur {n} ; non envoyés (crédits "
        "insuffisants) : {left}. Rechargez le compte SMS Partner, puis relancez la campagne "
        "{campaign} pour eux.",
        "en": "Sending what the credits allow: {sending} out of {n}; not sent (insufficient "
        "credits): {left}. Top up the SMS Partner account, then run campaign {campaign} again "
        "for them.",
    },
    "money.within_budget": {
        "fr": "Envoi dans la limite du plafond de budget : {sending} sur {n} ; non envoyés "
        "(budget dépassé) : {left}. Relevez le plafond, puis relancez la campagne {campaign} "
        "pour eux.",
        "en": "Sending what the budget cap allows: {sending} out of {n}; not sent (budget "
        "exceeded): {left}. Raise the cap, then run campaign {campaign} again for them.",
    },
    "money.also_approval": {
        "fr": "Une approbation est aussi requise ({why}) : ajoutez --yes.",
        "en": "Approval is needed too ({why}): add --yes.",
    },
    # (the cancel flow's own words are in tasks/cancellation.py, TEXTS)
    # the flows' closing log lines
    # {sent}, {failed}, {rejected}: plural("count.<outcome>", n) phrases ("1 envoyé")
    "log.campaign_summary": {
        "fr": "campagne {campaign} : {sent}, {failed}, {rejected} ; coût {cost}",
        "en": "campaign {campaign}: {sent}, {failed}, {rejected}; cost {cost}",
    },
    # counts after a label, so that 0, 1 and 2 all read right without a plural form
    "log.follow_up_done": {
        "fr": "campagnes suivies : {done} ; en échec : {failed}",
        "en": "campaigns followed up: {done}; failed: {failed}",
    },
    "follow_up.some_failed.one": {
        "fr": "{n} campagne sur {of} n'a pas pu être suivie : voyez son message dans le journal "
        "de l'exécution, puis relancez le suivi",
        "en": "{n} of {of} campaigns could not be followed up: see its line in the run's log, "
        "then run the follow-up again",
    },
    "follow_up.some_failed.other": {
        "fr": "{n} campagnes sur {of} n'ont pas pu être suivies : voyez leurs messages dans le "
        "journal de l'exécution, puis relancez le suivi",
        "en": "{n} of {of} campaigns could not be followed up: see their lines in the run's "
        "log, then run the follow-up again",
    },
    "log.approved": {
        "fr": "envoi approuvé{within}{comment}",
        "en": "sending approved{within}{comment}",
    },
    "log.approved_within": {
        "fr": " (dans la limite des crédits)",
        "en": " (within the credits)",
    },
    "log.waiting_approval": {
        "fr": "en attente d'accord ({why}) : ouvrez cette exécution dans Prefect et cliquez sur "
        "Resume",
        "en": "waiting for approval ({why}): open this run in Prefect and click Resume",
    },
    "log.follow_up_summary": {
        "fr": "{campaign} — délivrés : {delivered}, non délivrés : {not_delivered}, en "
        "attente : {waiting}, autres : {other} ; STOP ajoutés à la liste d'opposition : {stops}",
        "en": "{campaign} — delivered: {delivered}, not delivered: {not_delivered}, waiting: "
        "{waiting}, other: {other}; STOP added to the never-text list: {stops}",
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
        "fr": "{chunks} le {checked} ; dernier statut reçu de la passerelle : {latest}.",
        "en": "{chunks} on {checked}; latest status from the gateway: {latest}.",
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
    "end.not_sent.one": {"fr": "{n} destinataire non envoyé", "en": "{n} recipient not sent"},
    "end.not_sent.other": {"fr": "{n} destinataires non envoyés", "en": "{n} recipients not sent"},
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
    "error.sample_to_real_gateway": {
        "fr": "La liste d'exemple (data/samples) n'est jamais envoyée par le vrai SMS Partner : "
        "ses numéros peuvent être ceux de vraies personnes. Choisissez votre propre liste, ou "
        "cochez « Essai sans envoi » (--dry-run).",
        "en": "The bundled sample list (data/samples) is never sent through the real SMS "
        "Partner: its numbers may belong to real people. Choose your own list, or a dry run "
        "(--dry-run).",
    },
    "error.unknown_campaign": {
        "fr": "Campagne « {campaign} » inconnue : aucun envoi n'a été fait sous cet "
        "identifiant. Copiez l'identifiant exact depuis le nom de l'exécution de la campagne "
        "(page Runs de Prefect).",
        "en": "Unknown campaign “{campaign}”: nothing was sent under this id. Copy the exact id "
        "from the name of the campaign's run (Prefect's Runs page).",
    },
    "error.report_unwritten": {
        "fr": "rapport non écrit dans {folder} ({why}) ; libérez de la place (ou rétablissez "
        "le dossier), puis relancez la même commande",
        "en": "cannot write the report in {folder} ({why}); free some space (or restore the "
        "folder), then run the same command again",
    },
    "log.report_refreshed": {
        "fr": "Rapport de la campagne {campaign} mis à jour : envoyés : {sent}, annulés : "
        "{cancelled}, coût {cost}",
        "en": "Report of campaign {campaign} updated: sent: {sent}, cancelled: {cancelled}, "
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
    # -- plural forms: "<key>.<CLDR form>" entries, chosen by plural() ("one", "other", and
    # "many" where the language has it; a missing form falls back on "other"). French: 0 and 1
    # are "one" ("0 destinataire a répondu"), English: only 1.
    "count.sent.one": {"fr": "{n} envoyé", "en": "{n} sent"},
    "count.sent.other": {"fr": "{n} envoyés", "en": "{n} sent"},
    "count.failed.one": {"fr": "{n} en échec", "en": "{n} failed"},
    "count.failed.other": {"fr": "{n} en échec", "en": "{n} failed"},
    "count.rejected.one": {"fr": "{n} rejeté", "en": "{n} rejected"},
    "count.rejected.other": {"fr": "{n} rejetés", "en": "{n} rejected"},
    "count.recipients.one": {"fr": "{n} destinataire", "en": "{n} recipient"},
    "count.recipients.other": {"fr": "{n} destinataires", "en": "{n} recipients"},
    "count.rows.one": {"fr": "{n} ligne", "en": "{n} row"},
    "count.rows.other": {"fr": "{n} lignes", "en": "{n} rows"},
    "count.rows_loaded.one": {"fr": "{n} ligne chargée", "en": "{n} row loaded"},
    "count.rows_loaded.other": {"fr": "{n} lignes chargées", "en": "{n} rows loaded"},
    "count.numbers.one": {"fr": "{n} numéro", "en": "{n} number"},
    "count.numbers.other": {"fr": "{n} numéros", "en": "{n} numbers"},
    "count.sms.one": {"fr": "{n} SMS", "en": "{n} SMS"},
    "count.sms.other": {"fr": "{n} SMS", "en": "{n} SMS"},
    "count.chunks_checked.one": {"fr": "{n} lot envoyé vérifié", "en": "{n} sent chunk checked"},
    "count.chunks_checked.other": {
        "fr": "{n} lots envoyés vérifiés",
        "en": "{n} sent chunks checked",
    },
    # chunks by state, in a sentence ("Lots : 2 envoyés ; 1 annulé.")
    "chunks_in.pending.one": {"fr": "{n} à envoyer", "en": "{n} pending"},
    "chunks_in.pending.other": {"fr": "{n} à envoyer", "en": "{n} pending"},
    "chunks_in.sending.one": {"fr": "{n} en cours d'envoi", "en": "{n} sending"},
    "chunks_in.sending.other": {"fr": "{n} en cours d'envoi", "en": "{n} sending"},
    "chunks_in.sent.one": {"fr": "{n} envoyé", "en": "{n} sent"},
    "chunks_in.sent.other": {"fr": "{n} envoyés", "en": "{n} sent"},
    "chunks_in.failed.one": {"fr": "{n} en échec", "en": "{n} failed"},
    "chunks_in.failed.other": {"fr": "{n} en échec", "en": "{n} failed"},
    "chunks_in.in_doubt.one": {"fr": "{n} incertain", "en": "{n} in doubt"},
    "chunks_in.in_doubt.other": {"fr": "{n} incertains", "en": "{n} in doubt"},
    "chunks_in.cancelled.one": {"fr": "{n} annulé", "en": "{n} cancelled"},
    "chunks_in.cancelled.other": {"fr": "{n} annulés", "en": "{n} cancelled"},
    # one chunk's state, one row's outcome (the .xlsx files, the chunks' table artifact)
    "chunk_state.pending": {"fr": "à envoyer", "en": "pending"},
    "chunk_state.sending": {"fr": "en cours d'envoi", "en": "sending"},
    "chunk_state.sent": {"fr": "envoyé", "en": "sent"},
    "chunk_state.failed": {"fr": "en échec", "en": "failed"},
    "chunk_state.in_doubt": {"fr": "incertain", "en": "in doubt"},
    "chunk_state.cancelled": {"fr": "annulé", "en": "cancelled"},
    "row_outcome.sent": {"fr": "envoyé", "en": "sent"},
    "row_outcome.failed": {"fr": "en échec", "en": "failed"},
    "row_outcome.rejected": {"fr": "rejeté", "en": "rejected"},
    # the .xlsx files' headers (the .csv files keep the column names: they are for programs)
    "xlsx.chunks.index": {"fr": "lot", "en": "chunk"},
    "xlsx.chunks.size": {"fr": "destinataires", "en": "recipients"},
    "xlsx.chunks.territory": {"fr": "territoire", "en": "territory"},
    "xlsx.chunks.slot": {"fr": "créneau", "en": "slot"},
    "xlsx.chunks.tag": {"fr": "étiquette de l'envoi", "en": "send tag"},
    "xlsx.chunks.message_id": {"fr": "n° de message SMS Partner", "en": "SMS Partner message id"},
    "xlsx.chunks.nb_sms": {"fr": "SMS facturés", "en": "SMS billed"},
    "xlsx.chunks.cost": {"fr": "coût", "en": "cost"},
    "xlsx.chunks.state": {"fr": "état", "en": "state"},
    "xlsx.chunks.reason": {"fr": "motif", "en": "reason"},
    "xlsx.chunks.refused": {"fr": "numéros refusés", "en": "numbers refused"},
    "xlsx.rejects.row": {"fr": "ligne", "en": "row"},
    "xlsx.rejects.outcome": {"fr": "résultat", "en": "outcome"},
    "xlsx.rejects.reason": {"fr": "motif", "en": "reason"},
    "xlsx.rejects.detail": {"fr": "précision", "en": "detail"},
    "xlsx.rejects.e164": {"fr": "numéro (format international)", "en": "number (international)"},
    "xlsx.at_once": {"fr": "tout de suite", "en": "at once"},
    "xlsx.more_rows": {
        "fr": "... et {n} de plus dans {file}",
        "en": "... and {n} more in {file}",
    },
    # the flows' own log lines (the campaign's language)
    "log.loaded": {
        "fr": "{rows} ; colonne des numéros : « {column} »",
        "en": "{rows}; phone column: “{column}”",
    },
    "log.optout_list": {
        "fr": "liste d'opposition {name} : numéros lus : {read}, nouveaux dans la liste des "
        "personnes à ne plus contacter : {added}",
        "en": "opt-out list {name}: numbers read: {read}, new to the never-text list: {added}",
    },
    "log.stop_unread": {
        "fr": "liste STOP de la passerelle : entrées qui ne sont pas des numéros (ignorées) : {n}",
        "en": "the gateway's STOP list: entries that are not phone numbers (ignored): {n}",
    },
    "log.stop_list": {
        "fr": "liste STOP de la passerelle : numéros : {n}, nouveaux dans la liste des personnes "
        "à ne plus contacter : {added}",
        "en": "the gateway's STOP list: numbers: {n}, new to the never-text list: {added}",
    },
    "log.territory_plan": {"fr": "{territory} : {why}", "en": "{territory}: {why}"},
    "log.chunks_to_send.one": {"fr": "{n} lot à envoyer", "en": "{n} chunk to send"},
    "log.chunks_to_send.other": {"fr": "{n} lots à envoyer", "en": "{n} chunks to send"},
    "log.chunk_not_sent": {
        "fr": "lot {chunk} : {state} ({numbers}){reason}",
        "en": "chunk {chunk}: {state} ({numbers}){reason}",
    },
    "log.settle_waiting.one": {
        "fr": "{n} lot a reçu une réponse qui ne prouve rien (il a pu partir) : attente de "
        "{wait} s au plus pour que la passerelle dise s'il est parti (délai de vérification "
        "{settle} s)",
        "en": "{n} chunk got an answer that proves nothing (it may have landed): waiting up to "
        "{wait} s for the gateway to show whether it did (settle time {settle} s)",
    },
    "log.settle_waiting.other": {
        "fr": "{n} lots ont reçu une réponse qui ne prouve rien (ils ont pu partir) : attente "
        "de {wait} s au plus pour que la passerelle dise s'ils sont partis (délai de "
        "vérification {settle} s)",
        "en": "{n} chunks got an answer that proves nothing (they may have landed): waiting up "
        "to {wait} s for the gateway to show whether they did (settle time {settle} s)",
    },
    "log.settle_left.one": {
        "fr": "{n} lot reste incertain : une relance de la campagne ou le suivi quotidien le "
        "réglera dès que la passerelle pourra le dire",
        "en": "{n} chunk stays in doubt: a rerun of the campaign or the daily follow-up "
        "settles it once the gateway can tell",
    },
    "log.settle_left.other": {
        "fr": "{n} lots restent incertains : une relance de la campagne ou le suivi quotidien "
        "les réglera dès que la passerelle pourra le dire",
        "en": "{n} chunks stay in doubt: a rerun of the campaign or the daily follow-up "
        "settles them once the gateway can tell",
    },
    "log.settle_wait": {
        "fr": "attente de {seconds} s pour {chunks} dont l'envoi a pu partir, avant de "
        "redemander à la passerelle",
        "en": "waiting {seconds} s for {chunks} whose send may have landed, before asking the "
        "gateway again",
    },
    "log.doubt_settled": {
        "fr": "lots incertains : {n} ; confirmés envoyés : {sent}, montrés non envoyés (une "
        "relance les envoie) : {not_sent}, toujours incertains : {still}",
        "en": "chunks in doubt: {n}; confirmed sent: {sent}, shown not sent (a rerun sends "
        "them): {not_sent}, still in doubt: {still}",
    },
    "log.stop_replies": {
        "fr": "réponses STOP : {n}, nouvelles dans la liste des personnes à ne plus "
        "contacter : {added}",
        "en": "STOP replies: {n}, new to the never-text list: {added}",
    },
    "log.summary_elsewhere": {
        "fr": "le résumé de la campagne (summary.json) n'est pas dans le dossier de données de "
        "ce poste ({folder}) : son rapport est laissé tel quel ; donnez à tous les postes le "
        "même SURVEY_DATA_DIR",
        "en": "the campaign's summary.json is not in this worker's data folder ({folder}): its "
        "report was left as it is; give every worker the same SURVEY_DATA_DIR",
    },
    # retention purge and erasure (tasks/steps/privacy.py)
    "log.purged": {
        "fr": "purge : campagnes purgées : {campaigns}, numéros remplacés par un pseudonyme : "
        "{numbers}, fichiers réécrits : {rewritten}, supprimés : {removed}",
        "en": "purge: campaigns purged: {campaigns}, numbers pseudonymised: {numbers}, files "
        "rewritten: {rewritten}, removed: {removed}",
    },
    "log.purge_kept": {
        "fr": "campagnes gardées malgré la durée de conservation, car des lots restent à "
        "envoyer ou à vérifier (une relance ou le suivi les termine) : {n} ({campaigns})",
        "en": "campaigns past the retention period kept, as chunks are left to send or to "
        "settle (a rerun or the follow-up finishes them): {n} ({campaigns})",
    },
    "log.erased": {
        "fr": "{number} effacé : lots : {chunks}, campagnes : {campaigns}, fichiers réécrits : "
        "{rewritten}, supprimés : {removed}",
        "en": "{number} erased: chunks: {chunks}, campaigns: {campaigns}, files rewritten: "
        "{rewritten}, removed: {removed}",
    },
    # the command lines' readable summary, before the JSON line (tasks/reporting/terminal.py)
    "term.campaign": {"fr": "Campagne {campaign}", "en": "Campaign {campaign}"},
    "term.dry_run": {
        "fr": "Simulation : rien n'a été envoyé.",
        "en": "Dry run: nothing was sent.",
    },
    "term.counts": {
        "fr": "{loaded} : {sent}, {failed}, {rejected}.",
        "en": "{loaded}: {sent}, {failed}, {rejected}.",
    },
    "term.would_send": {"fr": "Seraient envoyés : {n}.", "en": "Would be sent: {n}."},
    "term.cost": {"fr": "Coût : {cost} ({sms}).", "en": "Cost: {cost} ({sms})."},
    "term.estimated": {"fr": "Coût estimé : {cost}.", "en": "Estimated cost: {cost}."},
    "term.credits_after": {"fr": "Crédits restants : {credits}.", "en": "Credits left: {credits}."},
    "term.at_once": {"fr": "Envoi immédiat.", "en": "Sent at once."},
    "term.scheduled": {"fr": "Envoi programmé : {slots}.", "en": "Scheduled: {slots}."},
    "term.report": {"fr": "Rapport : {path}", "en": "Report: {path}"},
    "term.next": {"fr": "À faire : {step}", "en": "Next: {step}"},
    "term.next.done": {
        "fr": "rien ; le suivi quotidien dira quels SMS sont arrivés.",
        "en": "nothing; the daily follow-up will tell which SMS arrived.",
    },
    "term.next.rejects": {
        "fr": "corrigez si besoin les lignes rejetées (rejects.xlsx dans le rapport).",
        "en": "fix the rejected rows if needed (rejects.xlsx in the report).",
    },
    "term.next.dry_run": {
        "fr": "relancez sans simulation pour envoyer.",
        "en": "run again without the dry run to send.",
    },
    "term.delivery": {
        "fr": "{checked}. Délivrés : {delivered}, non délivrés : {not_delivered}, en attente : "
        "{waiting}.",
        "en": "{checked}. Delivered: {delivered}, not delivered: {not_delivered}, waiting: "
        "{waiting}.",
    },
    "term.stops": {
        "fr": "Nouvelles réponses STOP (plus aucun SMS pour ces personnes) : {added}.",
        "en": "New STOP replies (these people are never texted again): {added}.",
    },
    "term.next.follow_up": {
        "fr": "rien ; les SMS en attente seront vérifiés au prochain suivi.",
        "en": "nothing; the waiting SMS are checked at the next follow-up.",
    },
    "term.campaigns_followed": {
        "fr": "Campagnes suivies : {n}, en échec : {failed}.",
        "en": "Campaigns followed up: {n}, failed: {failed}.",
    },
    "term.cancelled": {
        "fr": "{spared} ; lots annulés : {cancelled}, non annulés : {kept}.",
        "en": "{spared}; chunks cancelled: {cancelled}, not cancelled: {kept}.",
    },
    "term.cancel_spared.one": {
        "fr": "{n} destinataire ne recevra pas le SMS",
        "en": "{n} recipient will not be texted",
    },
    "term.cancel_spared.other": {
        "fr": "{n} destinataires ne recevront pas le SMS",
        "en": "{n} recipients will not be texted",
    },
    "term.next.cancel_kept": {
        "fr": "lisez dans le rapport les lots non annulés (ils peuvent encore partir).",
        "en": "read the chunks not cancelled in the report (they may still go out).",
    },
    "term.next.cancel_done": {"fr": "rien.", "en": "nothing."},
    # the demo (scripts/demo.py)
    "demo.simulator": {
        "fr": "Simulateur SMS Partner démarré sur {url}",
        "en": "SMS Partner simulator listening on {url}",
    },
    "demo.running": {
        "fr": "Campagne d'enquête sur {path} en cours...",
        "en": "Running a survey campaign on {path} ...",
    },
    "demo.failed": {
        "fr": "la démonstration a échoué (code de sortie {code})",
        "en": "demo failed (exit {code})",
    },
    "demo.rejected": {"fr": "Lignes rejetées, par motif :", "en": "Rejected rows, by reason:"},
    "demo.files": {
        "fr": "Dossier du rapport : {folder} ({files})",
        "en": "Report folder: {folder} ({files})",
    },
    # who is surveyed (issue 23): the report's sections on the audience
    "audience.surveys": {"fr": "Par enquête", "en": "By survey"},
    "audience.sample": {"fr": "Échantillon", "en": "Sample"},
    "audience.rules": {"fr": "Règles de sollicitation", "en": "Contact-pressure rules"},
    "audience.witnesses": {"fr": "Témoins", "en": "Witnesses"},
    "html.by_survey": {"fr": "Destinataires par enquête", "en": "Recipients by survey"},
    "col.survey": {"fr": "enquête", "en": "survey"},
    "xlsx.chunks.survey": {"fr": "enquête", "en": "survey"},
    "col.sms": {"fr": "SMS", "en": "SMS"},
    "col.cost": {"fr": "coût", "en": "cost"},
    "col.value": {"fr": "valeur", "en": "value"},
    "col.population": {"fr": "population", "en": "population"},
    "col.eligible": {"fr": "éligibles", "en": "eligible"},
    "col.drawn": {"fr": "tirées au sort", "en": "drawn"},
    "col.rule": {"fr": "règle", "en": "rule"},
    "col.set_aside": {"fr": "lignes écartées", "en": "rows set aside"},
    "sample.population": {
        "fr": "Population (personnes pouvant être interrogées)",
        "en": "Population (people who may be asked)",
    },
    "sample.eligible": {
        "fr": "Éligibles (pas sondées récemment)",
        "en": "Eligible (not surveyed recently)",
    },
    "sample.drawn": {"fr": "Tirées au sort", "en": "Drawn"},
    "sample.size": {"fr": "Taille demandée", "en": "Size asked"},
    "sample.quota": {"fr": "Quota", "en": "Quota"},
    "sample.quota_at_most": {
        "fr": "au plus {n} par valeur de «\u00a0{column}\u00a0»",
        "en": "at most {n} per value of “{column}”",
    },
    "sample.quota_proportional": {
        "fr": "selon la part de chaque valeur de «\u00a0{column}\u00a0» dans la population",
        "en": "in proportion to each value of “{column}” in the population",
    },
    "sample.no_quota": {"fr": "aucun", "en": "none"},
    "sample.seed": {"fr": "Graine du tirage", "en": "Seed of the draw"},
    "sample.seed_note": {
        "fr": "Pour refaire le même tirage, relancez avec la même graine ({seed}) et le même "
        "fichier.",
        "en": "To make the same draw again, run again with the same seed ({seed}) and the same "
        "file.",
    },
    "sample.short_quota": {
        "fr": "Les quotas n'ont pas permis d'atteindre la taille demandée\u00a0: {drawn} sur "
        "{size}.",
        "en": "The quotas did not allow the size asked: {drawn} out of {size}.",
    },
    "sample.short_eligible": {
        "fr": "Pas assez de personnes éligibles pour la taille demandée\u00a0: {drawn} sur {size}.",
        "en": "Too few eligible people for the size asked: {drawn} out of {size}.",
    },
    "sample.eligible_days": {
        "fr": "Éligibles (pas sondées depuis {days} jours)",
        "en": "Eligible (not surveyed for {days} days)",
    },
    "sample.percent": {"fr": "{percent} de la population", "en": "{percent} of the population"},
    "sample.blank": {"fr": "(vide)", "en": "(blank)"},
    "sample.cells": {
        "fr": "Tirage par valeur de «\u00a0{column}\u00a0»",
        "en": "Draw by value of “{column}”",
    },
    "sample.territory": {"fr": "territoire", "en": "territory"},
    "rules.intro": {
        "fr": "Lignes écartées parce que la personne a déjà été sollicitée, par règle\u00a0:",
        "en": "Rows set aside because the person was asked already, by rule:",
    },
    "rule.cap": {"fr": "délai minimum entre deux enquêtes", "en": "minimum wait between surveys"},
    "witnesses.texted.one": {
        "fr": "Enquête envoyée à {n} numéro témoin, à part\u00a0: il n'entre ni dans les "
        "comptes, ni dans l'échantillon, ni dans le coût de la campagne.",
        "en": "Survey sent to {n} witness number, apart: it is in none of the campaign's "
        "figures, sample or cost.",
    },
    "witnesses.texted.other": {
        "fr": "Enquête envoyée à {n} numéros témoins, à part\u00a0: ils n'entrent ni dans les "
        "comptes, ni dans l'échantillon, ni dans le coût de la campagne.",
        "en": "Survey sent to {n} witness numbers, apart: they are in none of the campaign's "
        "figures, sample or cost.",
    },
    "term.sample": {
        "fr": "Échantillon : {drawn} (éligibles : {eligible} ; population : {population} ; "
        "graine : {seed}).",
        "en": "Sample: {drawn} (eligible: {eligible}; population: {population}; seed: {seed}).",
    },
    "count.drawn.one": {"fr": "{n} personne tirée au sort", "en": "{n} person drawn"},
    "count.drawn.other": {"fr": "{n} personnes tirées au sort", "en": "{n} people drawn"},
    "term.rules": {
        "fr": "Écartées par les règles de sollicitation : {rules}.",
        "en": "Set aside by contact-pressure rules: {rules}.",
    },
    "term.witnesses.one": {
        "fr": "Témoins : enquête envoyée à {n} numéro témoin (hors comptes).",
        "en": "Witnesses: survey sent to {n} witness number (not counted).",
    },
    "term.witnesses.other": {
        "fr": "Témoins : enquête envoyée à {n} numéros témoins (hors comptes).",
        "en": "Witnesses: survey sent to {n} witness numbers (not counted).",
    },
    "term.surveys": {"fr": "Par enquête : {surveys}.", "en": "By survey: {surveys}."},
    "term.survey_item": {"fr": "{survey} {sent} ({cost})", "en": "{survey} {sent} ({cost})"},
    # numbers retired as undeliverable by the follow-up (tasks/retire.py)
    "delivery.retired_heading": {
        "fr": "Numéros qui ne reçoivent plus les SMS",
        "en": "Numbers no longer reached",
    },
    "delivery.retired": {
        "fr": "Mis de côté par ce suivi (non délivrés lors de plusieurs campagnes de suite) : "
        "{retired} ; de nouveau joignables (délivrés depuis) : {released}. Un numéro mis de "
        "côté ne reçoit plus d'enquête jusqu'à la fin de son délai.",
        "en": "Set aside by this follow-up (not delivered in several campaigns in a row): "
        "{retired}; reachable again (delivered since): {released}. A number set aside gets no "
        "survey until its time is up.",
    },
    "log.retired": {
        "fr": "Numéros mis de côté car non délivrés : {retired} ; de nouveau joignables : "
        "{released}",
        "en": "Numbers set aside as undeliverable: {retired}; reachable again: {released}",
    },
}


def _lang(lang: str) -> Lang:
    if lang not in LANGS:
        raise ValueError(f"unknown language {lang!r}: expected one of {', '.join(LANGS)}")
    return lang  # type: ignore[return-value]


def text(lang: Lang, key: str, **values: object) -> str:
    """The catalog's text for ``key`` in ``lang``, its ``{fields}`` filled from ``values``."""
    return CATALOG[key][_lang(lang)].format(**values)


def plural_form(n: int, lang: Lang) -> str:
    """CLDR's plural category of ``n``: fr "one" for 0 and 1, "many" for 1 000 000, else
    "other"; en "one" for 1 only."""
    return str(Locale.parse(_LOCALES[_lang(lang)]).plural_form(abs(n)))


def plural(lang: Lang, key: str, n: int, **values: object) -> str:
    """The catalog's ``<key>.<form>`` for the count ``n`` (``<key>.other`` when the language's
    form has no entry), ``{n}`` filled with ``n`` as people write it: ``plural("fr",
    "count.recipients", 1)`` is "1 destinataire", and 0 too; 2 gives "2 destinataires"."""
    return say_in(CATALOG, lang, key, n, **values)


def say_in(
    table: Mapping[str, Mapping[str, str]],
    lang: Lang,
    key: str,
    n: int | None = None,
    /,
    **values: object,
) -> str:
    """A text of ``table`` (shaped like CATALOG: a module's own words, such as the cancel
    flow's or the inbox's) in ``lang``; with ``n``, the entry ``<key>.<form>`` for that count
    (``<key>.other`` when the form has none) and ``{n}`` written as people write numbers."""
    lang = _lang(lang)
    if n is not None:
        form = f"{key}.{plural_form(n, lang)}"
        key = form if form in table else f"{key}.other"
        values = {**values, "n": number(n, lang)}
    return table[key][lang].format(**values)


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
    """A total as the bill gives it, to the cent: ``1 234,50 €`` (fr) or ``€1,234.50`` (en);
    "inconnu" / "unknown" for None. Rounded once, half up (97,245 € -> 97,25 €), from the
    amount as summed (the summary keeps four decimals); a price per SMS is ``unit_price``."""
    if amount is None:
        return text(lang, "unknown")
    cents = Decimal(str(round(float(amount), 4))).quantize(Decimal("0.01"), ROUND_HALF_UP)
    return format_currency(cents, currency or "EUR", locale=_LOCALES[_lang(lang)])


def unit_price(amount: float | None, currency: str, lang: Lang) -> str:
    """A price per SMS, which costs fractions of a cent: ``0,045 €`` (at least two decimals,
    at most four); "inconnu" / "unknown" for None."""
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
    "plural",
    "plural_form",
    "territory_cell",
    "territory_name",
    "text",
    "unit_price",
    "when",
    "zone_label",
]
