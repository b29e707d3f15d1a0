"""Directory use cases on in-memory fakes: read, replace, load the file at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from schemas.directory import DIRECTORY_ID
from services.router import directory
from services.router.directory import InvalidDirectory
from services.router.errors import DirectoryConflict
from tests.unit.router.fakes import FakeDeps, FakeUnitOfWork, directory_document, make_deps


@pytest.fixture
def deps(tmp_path: Path) -> FakeDeps:
    return make_deps(tmp_path)


async def test_replace_stores_the_next_version_and_respects_if_match(deps: FakeDeps) -> None:
    uow = FakeUnitOfWork(deps.store)
    assert await directory.current_directory(uow) is None
    first = await directory.replace_directory(
        uow, deps=deps, document=directory_document(), source="api", created_by="admin"
    )
    second = await directory.replace_directory(
        uow,
        deps=deps,
        document=directory_document(repeat=1),
        source="api",
        created_by="admin",
        expected_version=1,
    )
    assert (first.version, second.version) == (1, 2)
    current = await directory.current_directory(uow)
    assert current is not None
    assert current.document.policy.repeat == 1
    with pytest.raises(DirectoryConflict) as stale:
        await directory.replace_directory(
            uow,
            deps=deps,
            document=directory_document(),
            source="api",
            created_by="admin",
            expected_version=1,
        )
    assert stale.value.current_version == 2


async def test_each_new_version_is_announced_with_person_ids_only(deps: FakeDeps) -> None:
    uow = FakeUnitOfWork(deps.store)
    document = directory_document()
    await directory.replace_directory(
        uow, deps=deps, document=document, source="api", created_by="admin"
    )
    await directory.replace_directory(
        uow, deps=deps, document=directory_document(repeat=1), source="file", created_by="f"
    )
    announced = deps.store.events("directory.published")
    assert [e.version for e in announced] == [1, 2]
    assert all(e.directory_id == DIRECTORY_ID for e in announced)
    assert announced[0].person_ids == tuple(sorted(p.id for p in document.people))
    # Ids only: no name, role or channel of anyone in the directory goes on the topic.
    payload = announced[0].model_dump_json()
    for person in document.people:
        assert person.name not in payload


async def test_the_directory_in_force_is_announced_again_unchanged(deps: FakeDeps) -> None:
    uow = FakeUnitOfWork(deps.store)
    assert await directory.announce_current_directory(uow) is None
    assert deps.store.events("directory.published") == []
    await directory.replace_directory(
        uow, deps=deps, document=directory_document(), source="file", created_by="f"
    )
    assert await directory.announce_current_directory(uow) == 1
    first, again = deps.store.events("directory.published")
    # The same version and time: intake, which has it already, keeps what it has.
    assert again == first


async def test_a_directory_breaking_the_rules_is_refused(deps: FakeDeps) -> None:
    broken = directory_document().model_copy(update={"people": directory_document().people[1:]})
    with pytest.raises(InvalidDirectory) as refused:
        await directory.replace_directory(
            FakeUnitOfWork(deps.store),
            deps=deps,
            document=broken,
            source="api",
            created_by="admin",
        )
    assert "spoc.person_id" in {e.path for e in refused.value.errors}
    assert deps.store.directories == []


async def test_the_file_is_applied_only_when_it_changed(deps: FakeDeps, tmp_path: Path) -> None:
    path = tmp_path / "directory.yaml"
    path.write_text(yaml.safe_dump(directory_document().model_dump(mode="json")))
    assert await directory.load_directory_file(deps=deps, path=path) == 1
    assert await directory.load_directory_file(deps=deps, path=path) is None
    path.write_text(yaml.safe_dump(directory_document(repeat=2).model_dump(mode="json")))
    assert await directory.load_directory_file(deps=deps, path=path) == 2
    assert [d.source for d in deps.store.directories] == ["file", "file"]


async def test_a_broken_file_keeps_the_stored_directory_or_stops_start_up(
    deps: FakeDeps, tmp_path: Path
) -> None:
    path = tmp_path / "directory.yaml"
    path.write_text("people: []\n")
    with pytest.raises(InvalidDirectory):
        await directory.load_directory_file(deps=deps, path=path)
    await directory.replace_directory(
        FakeUnitOfWork(deps.store),
        deps=deps,
        document=directory_document(),
        source="api",
        created_by="admin",
    )
    assert await directory.load_directory_file(deps=deps, path=path) is None
    assert len(deps.store.directories) == 1
