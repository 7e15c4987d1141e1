"""Form fields shared by the flows: one title, description and default each (the Prefect UI
builds each flow's Run form from them)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from tasks.i18n import Lang
from tasks.sending import API_KEY_ENV, SECRET_BLOCK

ApiKeyBlock = Annotated[
    str | None,
    Field(
        title="SMS Partner key (Secret block)",
        description="Name of the Prefect Secret block holding this account's API key; empty: "
        f"the worker's {API_KEY_ENV}, else the block '{SECRET_BLOCK}'.",
    ),
]

Language = Annotated[
    Lang,
    Field(
        title="Langue des rapports / Report language",
        description="fr: français (par défaut) ; en: English. The JSON summary, files' column "
        "names and reason codes stay as they are.",
    ),
]
