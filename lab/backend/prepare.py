#!/usr/bin/env python3
"""Apply the lab's adjustments to an unpacked copy of Synap's backend source (never to the archive itself).

    prepare.py SOURCE_DIR

In order, each one printed to stderr:
  1. package.json pnpm overrides that make the install resolvable from the npm registry (OVERRIDES below);
  2. pnpm-workspace.yaml: leave out the workspaces that need unpublished packages (WORKSPACE_EXCLUDES);
  3. packages/api's build script without `gen-types` (GEN_TYPES), whose output lands in the left-out api-types;
  4. every patches/*.patch in name order, `patch -p1`;
  5. migrations/*.sql copied into packages/database/migrations-custom/ (they run after upstream's, by name);
  6. a check that no migration still needs pgvector.
Each patch file starts with a paragraph saying why it exists.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name -> (version, why). Root-level pnpm overrides apply to every workspace package.
OVERRIDES = {
    "inngest": ("3.22.13", "the workspaces pin inngest 3.22.12, which the npm registry does not serve"),
    "@ory/hydra-client": ("2.2.0", "^2.2.1 has no matching published version"),
    "inngest>zod": (
        "^3.22",
        "the root override forces zod 4 everywhere, and the Inngest SDK 3.22 serve handler throws on GET/PUT "
        "/api/inngest with zod 4; the SDK gets the zod 3 it was built for",
    ),
}
# Their dependencies (@synap-core/api-types, @synap-core/types at registry versions) are not published, and the
# overrides above make pnpm re-resolve every importer of the lockfile, --filter or not.
WORKSPACE_EXCLUDES = ["!apps/admin-ui", "!packages/api-types"]
GEN_TYPES = " && pnpm gen-types"
VECTOR_TYPE = re.compile(r"\bvector\s*\(\s*\d+\s*\)", re.IGNORECASE)


def note(message: str) -> None:
    print(f"prepare: {message}", file=sys.stderr)


def set_overrides(src: Path) -> None:
    path = src / "package.json"
    data = json.loads(path.read_text())
    overrides = data.setdefault("pnpm", {}).setdefault("overrides", {})
    for name, (version, why) in OVERRIDES.items():
        overrides[name] = version
        note(f"override {name} -> {version}: {why}")
    path.write_text(json.dumps(data, indent=2) + "\n")


def exclude_workspaces(src: Path) -> None:
    path = src / "pnpm-workspace.yaml"
    lines = path.read_text().splitlines()
    if "packages:" not in lines:
        sys.exit(f"prepare: {path} has no top-level 'packages:' list")
    at = lines.index("packages:") + 1
    while at < len(lines) and lines[at].lstrip().startswith("- "):
        at += 1
    present = {line.strip().removeprefix("- ").strip("\"'") for line in lines}
    added = [f'  - "{pattern}"' for pattern in WORKSPACE_EXCLUDES if pattern not in present]
    path.write_text("\n".join(lines[:at] + added + lines[at:]) + "\n")
    note(f"workspaces left out: {', '.join(WORKSPACE_EXCLUDES)} (they need unpublished @synap-core packages)")


def drop_gen_types(src: Path) -> None:
    path = src / "packages/api/package.json"
    data = json.loads(path.read_text())
    build = data.get("scripts", {}).get("build", "")
    if GEN_TYPES in build:
        data["scripts"]["build"] = build.replace(GEN_TYPES, "")
        path.write_text(json.dumps(data, indent=2) + "\n")
        note("packages/api build without gen-types (it only writes the left-out packages/api-types)")


def apply_patches(src: Path, folder: Path) -> None:
    for patch in sorted(folder.glob("*.patch")):
        result = subprocess.run(
            ["patch", "-p1", "--forward", "--batch", "--no-backup-if-mismatch", "-i", str(patch)],
            cwd=src,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            sys.exit(f"prepare: {patch.name} does not apply:\n{result.stdout}{result.stderr}")
        note(f"patch {patch.relative_to(HERE)}")


def add_lab_migrations(src: Path) -> None:
    target = src / "packages/database/migrations-custom"
    target.mkdir(parents=True, exist_ok=True)
    for sql in sorted((HERE / "migrations").glob("*.sql")):
        shutil.copy2(sql, target / sql.name)
        note(f"lab migration {sql.name} -> migrations-custom/")


def check_no_pgvector(src: Path) -> None:
    for folder in ("migrations-drizzle", "migrations-custom"):
        for sql in sorted((src / "packages/database" / folder).glob("*.sql")):
            if VECTOR_TYPE.search(sql.read_text()):
                sys.exit(f"prepare: {folder}/{sql.name} still uses pgvector's vector(N), which the lab's PostgreSQL lacks")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="unpacked synap-backend source (modified in place)")
    args = parser.parse_args()
    src = args.source.resolve()
    if not (src / "apps/api/package.json").is_file():
        sys.exit(f"prepare: {src} does not look like synap-backend (no apps/api/package.json)")
    set_overrides(src)
    exclude_workspaces(src)
    drop_gen_types(src)
    apply_patches(src, HERE / "patches")
    add_lab_migrations(src)
    check_no_pgvector(src)


if __name__ == "__main__":
    main()
