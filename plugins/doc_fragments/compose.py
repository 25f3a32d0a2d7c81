# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  project_dir:
    description:
      - Directory of the compose project (C(docker compose --project-directory)); commands also run there.
      - Runbook and inventory variable C(synap_compose_project_dir).
    type: path
  files:
    description:
      - Compose files (C(docker compose --file), in order). Unset uses compose's own lookup in O(project_dir).
      - Inventory variable C(synap_compose_files).
    type: list
    elements: path
  project_name:
    description:
      - Compose project name (C(docker compose --project-name)); the lab's is C(synap-lab).
      - Inventory variable C(synap_compose_project_name).
    type: str
  docker_cli:
    description: The C(docker) client to run; C(docker compose) (v2) must be installed as its plugin.
    type: path
    default: docker
notes:
  - C(docker compose) is run with an argument list on the host that runs the module, so it works over SSH.
requirements:
  - docker CLI with the compose v2 plugin on the target host
"""
