"""The public feeds: Atom for people's feed readers, CAP 1.2 for alerting systems.

Only published versions of real bulletins reach these builders (drills are filtered out by
the query and refused again here). Each CAP message carries one `info` block per language
(en-US, es-US); an update is msgType Update and a retraction msgType Cancel, each with
`references` naming the earlier messages as "sender,identifier,sent" triples (CAP 1.2,
3.2.1). `/feeds/cap.xml` is an Atom index whose entries embed the full CAP `alert`, the usual
way CAP is syndicated; every alert also stands alone at `/feeds/cap/{id}/{version}.xml`.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from schemas.base import is_drill, parse_version_ref
from services.rumor_control.department import DepartmentConfig
from services.rumor_control.domain import BulletinRow, VersionRow
from services.rumor_control.gazetteer import Gazetteer

__all__ = [
    "ATOM_NS",
    "CAP_LANGUAGES",
    "CAP_NS",
    "atom_feed",
    "cap_alert",
    "cap_document",
    "cap_feed",
    "cap_identifier",
]

ATOM_NS = "http://www.w3.org/2005/Atom"
CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
CAP_LANGUAGES = {"en": "en-US", "es": "es-US"}
_EVENT = {"en": "Community information bulletin", "es": "Boletín informativo para la comunidad"}
_KIND_TITLE = {
    "standby": {"en": "Standby bulletin", "es": "Boletín de reserva"},
    "rumor_fact": {"en": "Rumor vs. fact", "es": "Rumor o realidad"},
    "correction": {"en": "Correction", "es": "Corrección"},
}

ET.register_namespace("cap", CAP_NS)

Published = tuple[BulletinRow, VersionRow]


def _a(tag: str) -> str:
    # Atom elements stay unqualified under an xmlns on the root: ElementTree's
    # default_namespace refuses the unqualified attributes Atom uses (rel, href, type).
    return tag


def _c(tag: str) -> str:
    return f"{{{CAP_NS}}}{tag}"


def _xml_text(text: str) -> str:
    """`text` without the characters XML 1.0 cannot carry (ElementTree writes them as they are).

    Edits are refused with such characters (services/common/text.py), so this only matters
    for text stored before that rule: the public feeds stay well-formed whatever is stored.
    """
    return "".join(char for char in text if _xml_char(ord(char)))


def _xml_char(code: int) -> bool:
    # XML 1.0, 2.2 Char: #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]
    return (
        code in (0x9, 0xA, 0xD)
        or 0x20 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    )


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrib: str) -> ET.Element:
    element = ET.SubElement(parent, tag, {k: _xml_text(v) for k, v in attrib.items()})
    if text is not None:
        element.text = _xml_text(text)
    return element


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _cap_time(moment: datetime, tz: ZoneInfo) -> str:
    """CAP's dateTime: local time with its offset, no fractions ("2026-03-03T15:15:00-06:00")."""
    return moment.astimezone(tz).replace(microsecond=0).isoformat()


def cap_identifier(bulletin_id: uuid.UUID, version: int) -> str:
    """The CAP identifier of one bulletin version (no spaces, commas or markup characters)."""
    return f"urn:aviso:bulletin:{bulletin_id}:{version}"


def _public(rows: Iterable[Published]) -> list[Published]:
    # Defence in depth: the query already excludes drills and unpublished versions.
    return [
        (b, v)
        for b, v in rows
        if not is_drill(b.status) and v.state == "published" and v.published_at is not None
    ]


def _reference_triples(
    version: VersionRow, versions: Sequence[VersionRow], *, sender: str, tz: ZoneInfo
) -> list[str]:
    """CAP `references`: sender,identifier,sent of each earlier message that was published,
    of this bulletin or of the earlier bulletins of its chain (`versions` holds them)."""
    published_at = {(v.bulletin_id, v.version): v.published_at for v in versions}
    triples = []
    for ref in version.references:
        ref_id, ref_version = parse_version_ref(ref)
        sent = published_at.get((ref_id, ref_version))
        if sent is not None:
            triples.append(f"{sender},{cap_identifier(ref_id, ref_version)},{_cap_time(sent, tz)}")
    return triples


def cap_alert(
    bulletin: BulletinRow,
    version: VersionRow,
    *,
    versions: Sequence[VersionRow],
    department: DepartmentConfig,
    gazetteer: Gazetteer,
    base_url: str,
) -> ET.Element:
    """One CAP 1.2 `alert`: one `info` per language, references to earlier versions."""
    if is_drill(bulletin.status) or version.published_at is None:
        raise ValueError("only published versions of real bulletins are public")
    tz = department.tz
    sender = department.department.cap_sender
    alert = ET.Element(_c("alert"))
    _sub(alert, _c("identifier"), cap_identifier(bulletin.bulletin_id, version.version))
    _sub(alert, _c("sender"), sender)
    _sub(alert, _c("sent"), _cap_time(version.published_at, tz))
    _sub(alert, _c("status"), bulletin.status)
    _sub(alert, _c("msgType"), version.msg_type)
    _sub(alert, _c("scope"), "Public")
    triples = _reference_triples(version, versions, sender=sender, tz=tz)
    if triples:
        _sub(alert, _c("references"), " ".join(triples))
    area = gazetteer.get(bulletin.area_code)
    for language in ("en", "es"):
        text = version.texts.get(language)
        if text is None:
            continue
        info = _sub(alert, _c("info"))
        _sub(info, _c("language"), CAP_LANGUAGES[language])
        _sub(info, _c("category"), "Safety")
        _sub(info, _c("event"), _EVENT[language])
        _sub(info, _c("responseType"), "None")
        _sub(info, _c("urgency"), "Unknown")
        _sub(info, _c("severity"), "Unknown")
        _sub(info, _c("certainty"), "Unknown")
        code = _sub(info, _c("eventCode"))
        _sub(code, _c("valueName"), "AvisoBulletinKind")
        _sub(code, _c("value"), bulletin.kind)
        if version.expires_at is not None:
            _sub(info, _c("expires"), _cap_time(version.expires_at, tz))
        _sub(info, _c("senderName"), department.department.name(language))
        _sub(info, _c("headline"), text["headline"])
        _sub(info, _c("description"), text["body"])
        _sub(info, _c("instruction"), text["sms"])
        _sub(info, _c("web"), f"{base_url}/feeds/cap/{bulletin.bulletin_id}/{version.version}.xml")
        _sub(info, _c("contact"), department.phone_line)
        if area is not None:
            area_element = _sub(info, _c("area"))
            _sub(area_element, _c("areaDesc"), area.name(language))
            geocode = _sub(area_element, _c("geocode"))
            _sub(geocode, _c("valueName"), "AvisoGazetteer")
            _sub(geocode, _c("value"), area.code)
    return alert


def cap_document(alert: ET.Element) -> bytes:
    """A standalone CAP message (application/cap+xml)."""
    document: bytes = ET.tostring(
        alert, encoding="utf-8", xml_declaration=True, default_namespace=CAP_NS
    )
    return document


def _updated(rows: Sequence[Published]) -> datetime:
    times = [v.published_at for _, v in rows if v.published_at is not None]
    return max(times) if times else datetime(2000, 1, 1, tzinfo=UTC)


def _feed(
    title: str, self_url: str, department: DepartmentConfig, rows: Sequence[Published]
) -> ET.Element:
    feed = ET.Element(_a("feed"), {"xmlns": ATOM_NS, _XML_LANG: "es-US"})
    _sub(feed, _a("id"), self_url)
    _sub(feed, _a("title"), title)
    _sub(feed, _a("updated"), _rfc3339(_updated(rows)))
    author = _sub(feed, _a("author"))
    _sub(author, _a("name"), department.department.name("en"))
    _sub(author, _a("uri"), department.department.web)
    _sub(feed, _a("link"), rel="self", href=self_url)
    return feed


def _chain_root(bulletin: BulletinRow, version: VersionRow) -> uuid.UUID:
    """The first bulletin of the chain this version belongs to (references are oldest
    first), or the bulletin itself."""
    if version.references:
        return parse_version_ref(version.references[0])[0]
    return bulletin.bulletin_id


def atom_feed(rows: Iterable[Published], *, department: DepartmentConfig, base_url: str) -> bytes:
    """Bulletins as Atom: one entry per bulletin and language, its latest public version."""
    public = _public(rows)
    self_url = f"{base_url}/feeds/bulletins.atom"
    title = f"{department.department.name('es')} / {department.department.name('en')}: "
    title += "boletines / bulletins"
    feed = _feed(title, self_url, department, public)
    for bulletin, version in public:
        assert version.published_at is not None
        for language in ("es", "en"):
            text = version.texts.get(language)
            if text is None:
                continue
            entry = _sub(feed, _a("entry"), **{_XML_LANG: CAP_LANGUAGES[language]})
            # One id per chain: a reader replaces the superseded bulletin's entry with this.
            _sub(entry, _a("id"), f"urn:aviso:bulletin:{_chain_root(bulletin, version)}:{language}")
            _sub(entry, _a("title"), text["headline"])
            _sub(entry, _a("updated"), _rfc3339(version.published_at))
            _sub(entry, _a("published"), _rfc3339(bulletin.created_at))
            kind = "correction" if version.msg_type == "Cancel" else bulletin.kind
            _sub(entry, _a("category"), term=kind, label=_KIND_TITLE[kind][language])
            _sub(entry, _a("summary"), text["sms"])
            _sub(entry, _a("content"), text["body"], type="text")
            _sub(
                entry,
                _a("link"),
                rel="alternate",
                type="application/cap+xml",
                href=f"{base_url}/feeds/cap/{bulletin.bulletin_id}/{version.version}.xml",
            )
    document: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
    return document


def cap_feed(
    rows: Iterable[Published],
    *,
    versions: dict[uuid.UUID, list[VersionRow]],
    department: DepartmentConfig,
    gazetteer: Gazetteer,
    base_url: str,
) -> bytes:
    """An Atom index of CAP messages, each entry embedding its full `alert`; `versions`
    holds every published version by bulletin (those a reference names included)."""
    public = _public(rows)
    every = [v for bulletin_versions in versions.values() for v in bulletin_versions]
    self_url = f"{base_url}/feeds/cap.xml"
    title = f"{department.department.name('en')}: CAP 1.2"
    feed = _feed(title, self_url, department, public)
    for bulletin, version in public:
        assert version.published_at is not None
        entry = _sub(feed, _a("entry"))
        identifier = cap_identifier(bulletin.bulletin_id, version.version)
        _sub(entry, _a("id"), identifier)
        headline = " / ".join(
            version.texts[lang]["headline"] for lang in ("es", "en") if lang in version.texts
        )
        _sub(entry, _a("title"), headline)
        _sub(entry, _a("updated"), _rfc3339(version.published_at))
        href = f"{base_url}/feeds/cap/{bulletin.bulletin_id}/{version.version}.xml"
        _sub(entry, _a("link"), rel="alternate", type="application/cap+xml", href=href)
        content = _sub(entry, _a("content"), type="application/cap+xml")
        content.append(
            cap_alert(
                bulletin,
                version,
                versions=every or [version],
                department=department,
                gazetteer=gazetteer,
                base_url=base_url,
            )
        )
    document: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
    return document
