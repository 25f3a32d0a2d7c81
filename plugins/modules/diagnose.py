# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# The work is done by the action plugin of the same name; this file carries its documentation.

DOCUMENTATION = r"""
module: diagnose
short_description: Run a scenario's diagnostic look-ups side by side, as one task
description:
  - Runs several C(synap.ops.*_info) modules, one per data source (Inngest, PostgreSQL, compose services, API
    metrics, the deploy checkout), at the same time, and returns each one's result under its source name.
  - The play's module_defaults for each module apply, as they would to a task of its own.
  - The modules run concurrently when modules are piped to the target's interpreter (pipelining, which the
    collection's C(ansible.cfg) turns on); otherwise one after the other.
  - When the environment variable C(SYNAP_PLAY_PLAN_DIR) names a folder, the resolved calls of an Assess task are
    kept there as C(<inventory_hostname>.json), readable by their owner only, as they carry the inventory's
    connection settings. This is done for a host on the local connection, and for one reached by
    C(ansible.builtin.ssh) without a password (with Ansible's ssh command for the host and the Python its modules
    ran with). synap-play
    uses them to start the same look-ups at once on its next run, on the controller or on that host.
  - In a run kept by the synap.ops.incident callback, hosts of one task that are one machine reached alike (aliases
    of one SSH host, hosts on the local connection) and ask the same look-up share one answer. The first asks, the
    others take its answer (C(taken_from)). A host asking again in the same task (C(until) retries) asks afresh. The
    inventory variable C(synap_share_lookups=false) makes every host ask for itself.
version_added: 0.1.0
author: Synap operations (@synap-ops)
options:
  sources:
    description:
      - The look-ups, by name. Each is a mapping with C(module), the info module's name, C(args), its
        arguments, and optionally C(first_look), arguments that replace some of C(args) when synap-play runs
        the look-up before the playbook (for example C(window=0) for a single metrics scrape).
      - Only info modules (names ending in C(_info)) are accepted; a diagnosis changes nothing.
    type: dict
    required: true
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - synap.ops.attributes.wrapper
attributes:
  check_mode:
    support: full
    details: The info modules change nothing in either mode.
"""

EXAMPLES = r"""
- name: Assess | Inngest, the worker service and the database, at once
  synap.ops.diagnose:
    sources:
      inngest:
        module: synap.ops.inngest_info
        args:
          gather: [health, queue, runs]
      jobs:
        module: synap.ops.compose_service_info
        args:
          services: [jobs]
          tail: 100
      db:
        module: synap.ops.postgres_activity_info
  register: found

- name: Investigate | Use one source's result
  ansible.builtin.debug:
    msg: "{{ found.sources.inngest.queue_depth }} runs queued"
"""

RETURN = r"""
sources:
  description: Each source's module result (without its invocation), by source name.
  returned: always
  type: dict
modules:
  description: Each source's module, by its fully qualified name.
  returned: always
  type: dict
seconds:
  description: Wall time of each source's module run, and of all of them (C(all)).
  returned: always
  type: dict
concurrent:
  description: Whether the modules ran at the same time.
  returned: always
  type: bool
taken_from:
  description: The sources answered by another host's look-up (one machine asked alike), with that host's name.
  returned: always
  type: dict
msg:
  description: Each source's one-line summary, joined.
  returned: always
  type: str
"""
