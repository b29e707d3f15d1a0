"""CAP 1.2 and Atom built from bulletin versions; CAP validated against the OASIS schema."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest
import xmlschema

from services.rumor_control.config import PACKAGE_DIR
from services.rumor_control.department import load_department
from services.rumor_control.feeds import atom_feed, cap_alert, cap_document, cap_feed
from services.rumor_control.gazetteer import load_gazetteer
from services.rumor_control.repository import BulletinRow, VersionRow

SCHEMA = xmlschema.XMLSchema(str(PACKAGE_DIR / "cap" / "CAP-v1.2.xsd"))
DEPARTMENT = load_department(PACKAGE_DIR / "department.yaml")
GAZETTEER = load_gazetteer(PACKAGE_DIR / "gazetteer.yaml")
CAP = "{urn:oasis:names:tc:emergency:cap:1.2}"
T0 = datetime(2026, 3, 3, 21, 15, 30, 123456, tzinfo=UTC)
TEXTS = {
    "en": {
        "headline": "Rumor vs. fact: Riverside",
        "body": "FACT & <more>",
        "sms": "s",
        "radio": "r",
    },
    "es": {
        "headline": "¿Rumor o realidad? La Ribera",
        "body": "REALIDAD",
        "sms": "s",
        "radio": "r",
    },
}


def _rows(status: str = "Actual") -> tuple[BulletinRow, VersionRow, VersionRow]:
    bulletin_id = uuid.uuid4()
    bulletin = BulletinRow(
        bulletin_id, "rumor_fact", status, "retracted", 2, "rumor_fact", uuid.uuid4(), (),  # type: ignore[arg-type]
        "riverside", T0, T0, T0,
    )  # fmt: skip
    first = VersionRow(
        bulletin_id, 1, "Alert", (), "published", 1, TEXTS, (), (), ("liaison",), {}, None, None,
        T0, published_at=T0, expires_at=T0 + timedelta(hours=4),
    )  # fmt: skip
    cancel = VersionRow(
        bulletin_id, 2, "Cancel", (f"{bulletin_id}:1",), "published", 1, TEXTS, (), (), (), {},
        None, None, T0, published_at=T0 + timedelta(minutes=5),
    )  # fmt: skip
    return bulletin, first, cancel


def _alert(version: VersionRow, bulletin: BulletinRow, versions: list[VersionRow]) -> ET.Element:
    return cap_alert(
        bulletin, version, versions=versions, department=DEPARTMENT, gazetteer=GAZETTEER,
        base_url="https://aviso.example",
    )  # fmt: skip


def test_a_cap_alert_validates_with_one_info_per_language() -> None:
    bulletin, first, cancel = _rows()
    document = cap_document(_alert(first, bulletin, [first, cancel]))
    SCHEMA.validate(document.decode())
    root = ET.fromstring(document)
    assert [i.findtext(f"{CAP}language") for i in root.iter(f"{CAP}info")] == ["en-US", "es-US"]
    assert root.findtext(f"{CAP}sent") == "2026-03-03T15:15:30-06:00"
    assert root.findtext(f"{CAP}info/{CAP}area/{CAP}areaDesc") == "Riverside"


def test_a_cancel_references_the_original_as_sender_identifier_sent() -> None:
    bulletin, first, cancel = _rows()
    root = _alert(cancel, bulletin, [first, cancel])
    SCHEMA.validate(ET.tostring(root, encoding="unicode"))
    assert root.findtext(f"{CAP}msgType") == "Cancel"
    assert root.findtext(f"{CAP}references") == (
        f"{DEPARTMENT.department.cap_sender},urn:aviso:bulletin:{bulletin.bulletin_id}:1,"
        "2026-03-03T15:15:30-06:00"
    )


def test_drills_are_refused_and_left_out_of_feeds() -> None:
    bulletin, first, _ = _rows(status="Exercise")
    with pytest.raises(ValueError, match="public"):
        _alert(first, bulletin, [first])
    atom = atom_feed([(bulletin, first)], department=DEPARTMENT, base_url="https://a.example")
    cap = cap_feed(
        [(bulletin, first)], versions={}, department=DEPARTMENT, gazetteer=GAZETTEER,
        base_url="https://a.example",
    )  # fmt: skip
    assert str(bulletin.bulletin_id).encode() not in atom + cap


def test_the_feeds_embed_every_public_version() -> None:
    bulletin, first, cancel = _rows()
    cap = cap_feed(
        [(bulletin, cancel)], versions={bulletin.bulletin_id: [first, cancel]},
        department=DEPARTMENT, gazetteer=GAZETTEER, base_url="https://a.example",
    )  # fmt: skip
    alerts = list(ET.fromstring(cap).iter(f"{CAP}alert"))
    assert len(alerts) == 1
    SCHEMA.validate(ET.tostring(alerts[0], encoding="unicode"))
    atom = ET.fromstring(atom_feed([(bulletin, first)], department=DEPARTMENT, base_url="x"))
    entries = list(atom.iter("{http://www.w3.org/2005/Atom}entry"))
    assert len(entries) == 2
    assert {e.get("{http://www.w3.org/XML/1998/namespace}lang") for e in entries} == {
        "en-US",
        "es-US",
    }


def test_feeds_stay_well_formed_whatever_text_is_stored() -> None:
    # Text stored before edits were cleaned may hold characters XML cannot carry.
    hostile = "A\x00B\x0bC\x0cD\x1bE\ufffeF\uffffG\ud800H & <i>"
    texts = {
        lang: {section: f"{section} {hostile}" for section in ("headline", "body", "sms", "radio")}
        for lang in ("en", "es")
    }
    bulletin, first, _ = _rows()
    first = VersionRow(
        bulletin.bulletin_id, 1, "Alert", (), "published", 1, texts, (), (), ("liaison",), {},
        None, None, T0, published_at=T0,
    )  # fmt: skip
    atom = atom_feed([(bulletin, first)], department=DEPARTMENT, base_url="https://a.example")
    cap = cap_feed(
        [(bulletin, first)], versions={}, department=DEPARTMENT, gazetteer=GAZETTEER,
        base_url="https://a.example",
    )  # fmt: skip
    for document in (atom, cap, cap_document(_alert(first, bulletin, [first]))):
        root = ET.fromstring(document)  # raises on ill-formed XML
        text = "".join(root.itertext())
        assert "ABCDEFGH & <i>" in text
    SCHEMA.validate(cap_document(_alert(first, bulletin, [first])).decode())
