"""The keywords a phone texts to subscribe to bulletins, and the state each one leads to.

    (none)  --JOIN / UNIRME-->      pending   reply: "answer YES / CONFIRMO to confirm"
    pending --YES / CONFIRMO-->     active    reply: "you will receive bulletins"
    active  --STOP / ALTO-->        stopped   reply: "no more bulletins; START / ALTA"
    stopped --START / ALTA-->       active    reply: "bulletins again"

Opt-in needs the confirmation reply (a number typed by someone else never starts
receiving bulletins). The language is the keyword's: JOIN, YES, STOP and START are
English, UNIRME, CONFIRMO, ALTO and ALTA Spanish, and a later keyword in the other
language switches it. Every keyword gets a reply, even one that changes nothing, so a
person always learns where they stand. `SI` is not a keyword here: it acknowledges
alerts (router), and the gateway routes these keywords to rumor_control and all other
texts to router.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, assert_never

from schemas.base import Language

__all__ = [
    "KEYWORDS",
    "Command",
    "Decision",
    "Keyword",
    "Reply",
    "SubscriberState",
    "decide",
    "parse_keyword",
    "reply_text",
]

SubscriberState = Literal["pending", "active", "stopped"]
Command = Literal["join", "confirm", "stop", "start"]
# What the reply says (one text per outcome and language).
Reply = Literal["confirm_please", "joined", "stopped", "started", "not_joined", "already"]

# Keyword -> (command, language); the gateway routes exactly these to rumor_control.
KEYWORDS: dict[str, tuple[Command, Language]] = {
    "JOIN": ("join", "en"),
    "UNIRME": ("join", "es"),
    "YES": ("confirm", "en"),
    "CONFIRMO": ("confirm", "es"),
    "STOP": ("stop", "en"),
    "ALTO": ("stop", "es"),
    "START": ("start", "en"),
    "ALTA": ("start", "es"),
}
_FIRST_WORD = re.compile(r"[A-Za-z]+")


@dataclass(frozen=True)
class Keyword:
    """A recognised keyword: what it asks and in which language."""

    command: Command
    language: Language


@dataclass(frozen=True)
class Decision:
    """The subscriber's state after a keyword (None: no subscriber) and the reply to send."""

    state: SubscriberState | None
    reply: Reply


def parse_keyword(text: str) -> Keyword | None:
    """The keyword a text starts with (any case, anything after it ignored), or None."""
    found = _FIRST_WORD.search(text)
    if found is None or text[: found.start()].strip():
        return None
    entry = KEYWORDS.get(found.group().upper())
    return None if entry is None else Keyword(*entry)


def decide(current: SubscriberState | None, command: Command) -> Decision:
    """The state a keyword leads to from `current` (None: the number is not known)."""
    match command:
        case "join":
            if current in (None, "pending"):
                return Decision("pending", "confirm_please")
            return Decision("active", "started" if current == "stopped" else "already")
        case "confirm":
            if current is None:
                return Decision(None, "not_joined")
            return Decision("active", "already" if current == "active" else "joined")
        case "stop":
            if current is None:
                return Decision(None, "not_joined")
            return Decision("stopped", "stopped")
        case "start":
            if current is None or current == "pending":
                # Resubscribing is for people who confirmed once; others opt in first.
                return Decision(current, "not_joined")
            return Decision("active", "started" if current == "stopped" else "already")
        case _:
            assert_never(command)


_REPLIES: dict[Language, dict[Reply, str]] = {
    "en": {
        "confirm_please": "Aviso: reply YES to get Madison police bulletins by SMS. "
        "Reply STOP at any time to end.",
        "joined": "Aviso: you will get police bulletins by SMS. Reply STOP to end.",
        "stopped": "Aviso: you will get no more bulletins. Reply START to get them again.",
        "started": "Aviso: you will get police bulletins by SMS again. Reply STOP to end.",
        "not_joined": "Aviso: this number gets no bulletins. Reply JOIN to sign up.",
        "already": "Aviso: you already get police bulletins by SMS. Reply STOP to end.",
    },
    "es": {
        "confirm_please": "Aviso: responda CONFIRMO para recibir por SMS los boletines de la "
        "policía de Madison. Responda ALTO en cualquier momento para terminar.",
        "joined": "Aviso: recibirá por SMS los boletines de la policía. Responda ALTO para "
        "terminar.",
        "stopped": "Aviso: ya no recibirá boletines. Responda ALTA para volver a recibirlos.",
        "started": "Aviso: volverá a recibir por SMS los boletines de la policía. Responda "
        "ALTO para terminar.",
        "not_joined": "Aviso: este número no recibe boletines. Responda UNIRME para inscribirse.",
        "already": "Aviso: ya recibe por SMS los boletines de la policía. Responda ALTO para "
        "terminar.",
    },
}


def reply_text(reply: Reply, language: Language) -> str:
    """The reply's text in `language`."""
    return _REPLIES[language][reply]
