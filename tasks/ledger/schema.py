"""The ledger's tables, alone: what a ledger database holds, and the columns older ledgers lack.

No statement runs here but the additions of missing columns (``add_missing_columns``); the SQL
of each concern lives with it (``store``, ``cap``, ``retention``, ``pseudonyms``).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    text,
)
from sqlalchemy.engine import Engine

metadata = MetaData()

campaigns = Table(
    "campaigns",
    metadata,
    Column("campaign_id", String(120), primary_key=True),
    Column("survey_id", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # Set when the gateway says credits are gone: later chunks are not even tried.
    Column("halt_reason", String(64)),
    # The account's balance before the campaign's first run: the report covers every run.
    Column("credits_before", Float),
    # What the campaign is bound to: a rerun with another input is refused unless asked for.
    Column("input_fingerprint", String(64)),
    # Set when some of its numbers were replaced by pseudonyms (purge, erasure): a rerun's new
    # chunks are then checked against them (see ``extend_plan``).
    Column("pseudonymised_at", DateTime(timezone=True)),
    Column("purged_at", DateTime(timezone=True)),  # the retention purge's last pass
)

chunks = Table(
    "chunks",
    metadata,
    Column("campaign_id", String(120), primary_key=True),
    Column("chunk_index", Integer, primary_key=True),
    Column("tag", String(20), nullable=False, unique=True),
    Column("territory", String(16), nullable=False),
    Column("slot", String(40)),  # ISO 8601 with offset; NULL means "at once"
    Column("numbers", Text, nullable=False),  # comma-joined E.164, what the gateway gets
    Column("refused", Text),  # JSON {e164: gateway message} for numbers refused with code 9
    Column("size", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("reason", String(64)),
    Column("detail", Text),
    Column("owner", String(200)),
    Column("claimed_at", DateTime(timezone=True)),
    Column("reserved_cost", Float),
    Column("message_id", BigInteger),
    Column("nb_sms", Integer),
    Column("cost", Float),
    Column("currency", String(8)),
    Column("attempts", Integer, nullable=False, default=0),
    Column("updated_at", DateTime(timezone=True)),
    # When the latest send that may have landed ended (or will have ended, at the latest, for a
    # send under way); NULL when none is outstanding. "Not found" counts only a settle time later.
    Column("doubt_from", DateTime(timezone=True)),
    Column("claim_token", String(32)),  # recognises our own claim when a lost commit is retried
    Column("cost_estimated", Boolean),  # confirmed by status, priced by this campaign's answers
    # JSON {e164: "rule:campaign"} set aside by a contact-pressure rule (tasks.pressure); older
    # ledgers hold the campaign alone, set aside by the frequency cap.
    Column("held", Text),
    Column("survey_id", String(200)),  # NULL: the campaign's survey (campaigns.survey_id)
    # Covers the budget query, so a claim never reads the chunks' number lists.
    Index("ix_chunks_budget", "campaign_id", "state", "owner", "cost", "reserved_cost", "size"),
)

texted = Table(
    "texted",
    metadata,
    Column("e164", String(20), primary_key=True),
    Column("campaign_id", String(120), primary_key=True),
    # The primary key (e164 first) serves the frequency cap's lookups; a second index would
    # only slow the 500-row insert each chunk makes.
    Column("texted_at", DateTime(timezone=True), nullable=False),
    # The survey sent; NULL: the campaign's (campaigns.survey_id), as older ledgers recorded it.
    Column("survey_id", String(200)),
)

# One row: claims that reserve numbers under the frequency cap serialise on it, across campaigns.
cap_lock = Table("cap_lock", metadata, Column("id", Integer, primary_key=True, autoincrement=False))

# The never-text store (``tasks/nevertext.py``): everybody who must never be texted again, by a
# keyed hash of the number only, one row per source that said so. It outlives every purge.
never_text = Table(
    "never_text",
    metadata,
    Column("digest", String(40), primary_key=True),
    Column("source", String(16), primary_key=True),
    Column("reason", String(200)),
    Column("campaign_id", String(120)),
    Column("added_at", DateTime(timezone=True), nullable=False),
    # Past it the entry no longer blocks; NULL (every source but ``undeliverable``): never.
    Column("expires_at", DateTime(timezone=True)),
)

# The id of the key that made the ledger's pseudonyms (one row, written by the first purge or
# erasure): a process with another key would silently stop recognising those people.
pseudonym_keys = Table(
    "pseudonym_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Witness phones (``tasks/witnesses.py``): staff texted once per (campaign, survey, mode), apart
# from the chunks, the texted table and the counts. The row is written (``sending``) before the
# gateway is called, so a rerun or a concurrent run never texts a witness twice.
witness_sends = Table(
    "witness_sends",
    metadata,
    Column("campaign_id", String(120), primary_key=True),
    Column("survey_id", String(200), primary_key=True),
    Column("mode", String(16), primary_key=True),  # "campaign" or "only" (witnesses-only run)
    Column("e164", String(20), primary_key=True),
    Column("tag", String(20), nullable=False, unique=True),
    # sending, sent, failed, in_doubt; cancelled (with its campaign: never sent again)
    Column("state", String(16), nullable=False),
    Column("reason", String(64)),
    Column("detail", Text),  # why it failed, is in doubt, or was not cancelled
    Column("owner", String(200)),
    Column("slot", String(40)),  # ISO 8601 with offset; NULL means "at once"
    Column("message_id", BigInteger),
    Column("nb_sms", Integer),
    Column("cost", Float),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# A campaign's sample (``tasks/ledger/draws.py``): the draw's record (counts per quota value,
# the seed; no number) written once, by the first run, so a resumed campaign keeps its draw.
# ``purged_at``: the drawn people were dropped with the campaign's retention purge.
sample_draws = Table(
    "sample_draws",
    metadata,
    Column("campaign_id", String(120), primary_key=True),
    Column("record", Text, nullable=False),  # JSON, tasks.sample.Draw.record
    Column("drawn", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("purged_at", DateTime(timezone=True)),
)

# Who a campaign's sample drew: a keyed one-way value of each number (as the never-text store
# keeps, under a key of its own), never the number.
sample_drawn = Table(
    "sample_drawn",
    metadata,
    Column("campaign_id", String(120), primary_key=True),
    Column("digest", String(40), primary_key=True),
)

# The delivery status the follow-up read for each number of each campaign (``tasks/nevertext.py``,
# ``tasks/retire.py``): by the never-text store's keyed digest, never the number. It decides
# which numbers are retired as undeliverable; an erasure and the retention purge drop it.
delivery_history = Table(
    "delivery_history",
    metadata,
    Column("digest", String(40), primary_key=True),
    Column("campaign_id", String(120), primary_key=True),
    Column("status", String(16), nullable=False),  # delivered, not_delivered, waiting, other
    Column("campaign_at", DateTime(timezone=True), nullable=False),  # the campaigns' order
    Column("read_at", DateTime(timezone=True), nullable=False),  # when this status was read
    Index("ix_delivery_history_campaign_at", "campaign_at"),  # the retention purge's
)


def add_missing_columns(engine: Engine) -> None:
    """Ledgers written by earlier versions lack the newer columns: add them (all nullable)."""
    found = inspect(engine)
    for table in (campaigns, chunks, texted, never_text):
        have = {c["name"] for c in found.get_columns(table.name)}
        for column in table.columns:
            if column.name in have:
                continue
            kind = column.type.compile(dialect=engine.dialect)
            with engine.begin() as conn:
                conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}"))
