#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: postgres_setting
short_description: Change a PostgreSQL server setting with ALTER SYSTEM and reload
description:
  - Sets (C(ALTER SYSTEM SET)) or resets (C(ALTER SYSTEM RESET)) a server setting, then reloads the
    configuration, as the runbook does to raise C(max_connections).
  - Returns the old and new running values and RV(restart_required) when the setting only takes effect after
    a restart (C(pending_restart)); restarting is left to the service-control step of the playbook.
  - Idempotent; values are compared in the setting's own unit, so V(10min) equals V(600s).
  - Check mode returns the change it would make and changes nothing.
  - Needs a superuser (or a role granted C(ALTER SYSTEM) on the setting).
version_added: 0.1.0
author:
  - Synap operations (@synap)
options:
  name:
    description:
      - The setting's name, for example V(max_connections) or V(idle_in_transaction_session_timeout).
    type: str
    required: true
  value:
    description:
      - The value to set, as PostgreSQL accepts it (V(200), V(64MB), V(10min), V(on)). Required with O(state=present).
    type: str
  state:
    description:
      - V(present) sets O(value); V(absent) removes the C(ALTER SYSTEM) override (C(ALTER SYSTEM RESET)).
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - synap.ops.postgres
  - ansible.builtin.action_common_attributes
  - synap.ops.attributes.action
attributes:
  check_mode:
    details: Returns the planned change in RV(actions) and changes nothing.
"""

EXAMPLES = r"""
- name: Raise max_connections (runbook scenario 3; takes effect after a restart)
  synap.ops.postgres_setting:
    dsn: "{{ synap_database_url }}"
    name: max_connections
    value: "200"
  register: setting

- name: End sessions that sit idle in a transaction for more than 5 minutes
  synap.ops.postgres_setting:
    dsn: "{{ synap_database_url }}"
    name: idle_in_transaction_session_timeout
    value: 5min
"""

RETURN = r"""
msg:
  description: One-line summary.
  returned: always
  type: str
  sample: "max_connections: 25 -> 200 (restart required)"
name:
  description: The setting.
  returned: always
  type: str
old_value:
  description: The running value before, in the setting's unit (see RV(unit)).
  returned: always
  type: str
new_value:
  description: The running value after the reload (unchanged until a restart for restart-only settings).
  returned: always
  type: str
configured_value:
  description: The value in C(postgresql.auto.conf) afterwards, or null when there is no override.
  returned: always
  type: str
unit:
  description: The unit of the values, as in C(pg_settings.unit).
  returned: always
  type: str
restart_required:
  description: Whether a restart is needed for the configured value to take effect.
  returned: always
  type: bool
actions:
  description: The statements run (or in check mode planned), each with C(description) and C(statement).
  returned: always
  type: list
  elements: dict
"""

import re
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.synap.ops.plugins.module_utils.postgres import (
    compose,
    error_text,
    exit_with_action,
    postgres_argument_spec,
    query_one,
)

SETTING_SQL = """
SELECT name, setting, unit, vartype, context, pending_restart, enumvals, boot_val, reset_val
FROM pg_settings WHERE name = %s
"""

# The last postgresql.auto.conf line for the setting is the one ALTER SYSTEM manages.
AUTO_CONF_SQL = """
SELECT setting FROM pg_file_settings
WHERE name = %s AND sourcefile LIKE '%%postgresql.auto.conf'
ORDER BY seqno DESC LIMIT 1
"""

MEMORY_UNITS = {"B": 1 / 1024, "kB": 1, "MB": 1024, "GB": 1024 ** 2, "TB": 1024 ** 3}
TIME_UNITS = {"us": 0.001, "ms": 1, "s": 1000, "min": 60000, "h": 3600000, "d": 86400000}
TRUE_WORDS = ("on", "true", "yes", "1", "t", "y")
FALSE_WORDS = ("off", "false", "no", "0", "f", "n")


class BadValue(ValueError):
    pass


def normalize(value, vartype, unit):
    """``value`` as PostgreSQL would store it for a setting of ``vartype`` and base ``unit`` (e.g. 8kB, ms)."""
    text = str(value).strip().strip("'")
    if vartype == "bool":
        low = text.lower()
        if low in TRUE_WORDS:
            return "on"
        if low in FALSE_WORDS:
            return "off"
        raise BadValue(f"{value!r} is not a boolean (on/off)")
    if vartype in ("integer", "real"):
        match = re.fullmatch(r"(-?[0-9.]+(?:e[-+]?[0-9]+)?)\s*([a-zA-Z]*)", text)
        if not match:
            raise BadValue(f"{value!r} is not a number")
        number, given_unit = float(match.group(1)), match.group(2)
        if given_unit and unit:
            base_multiplier, base_unit = _split_unit(unit)
            table = MEMORY_UNITS if base_unit in MEMORY_UNITS else TIME_UNITS
            if given_unit not in table:
                raise BadValue(f"unit {given_unit!r} does not fit a setting measured in {unit}")
            number = number * table[given_unit] / (table[base_unit] * base_multiplier)
        elif given_unit:
            raise BadValue(f"{value!r} has a unit but the setting has none")
        if vartype == "integer":
            return str(int(round(number)))
        return f"{number:g}"
    if vartype == "enum":
        return text.lower()
    return text


def _split_unit(unit):
    match = re.fullmatch(r"([0-9]*)(\D+)", unit)
    return (int(match.group(1)) if match.group(1) else 1), match.group(2)


def with_unit(value, unit):
    return f"{value} {unit}" if unit else f"{value}"


def read(conn, name):
    return query_one(conn, SETTING_SQL, (name,))


def configured(conn, name):
    row = query_one(conn, AUTO_CONF_SQL, (name,))
    return row["setting"] if row else None


def reload_and_read(conn, name):
    """pg_reload_conf() only signals; wait (bounded) until this session has re-read the files, then read."""
    loaded_before = query_one(conn, "SELECT pg_conf_load_time() AS t")["t"]
    conn.execute("SELECT pg_reload_conf()")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        time.sleep(0.05)
        if query_one(conn, "SELECT pg_conf_load_time() AS t")["t"] != loaded_before:
            break
    return read(conn, name)


def run(module, conn):
    p = module.params
    name = p["name"]
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?", name):
        module.fail_json(msg=f"{name!r} is not a setting name; use a name from pg_settings such as max_connections")
    row = read(conn, name)
    if row is None:
        module.fail_json(msg=f"unknown setting {name!r}; check the spelling against pg_settings")
    if row["context"] in ("internal",):
        module.fail_json(msg=f"{name} is fixed at build or initdb time and cannot be changed with ALTER SYSTEM")
    try:
        current_override = configured(conn, name)
    except Exception as exc:
        module.fail_json(msg=f"cannot read postgresql.auto.conf through pg_file_settings ({error_text(exc)}); "
                             f"connect as a superuser")

    vartype, unit = row["vartype"], row["unit"]

    def norm(value):
        return None if value is None else normalize(value, vartype, unit)

    if p["state"] == "present":
        if p["value"] is None:
            module.fail_json(msg="value is required with state=present; give the value to set, e.g. value: '200'")
        try:
            desired = norm(p["value"])
        except BadValue as exc:
            module.fail_json(msg=f"{name}: {exc}; give a value PostgreSQL accepts for it (unit {unit or 'none'})")
        if vartype == "enum" and row["enumvals"] and desired not in [v.lower() for v in row["enumvals"]]:
            module.fail_json(msg=f"{name}: {p['value']!r} is not one of {', '.join(row['enumvals'])}")
        effective = norm(current_override) if current_override is not None else row["setting"]
        needed = effective != desired
        statement = compose("ALTER SYSTEM SET {} = {value}", name, value=p["value"])
        description = f"ALTER SYSTEM SET {name} = '{p['value']}' and reload"
    else:
        desired = None
        needed = current_override is not None
        statement = compose("ALTER SYSTEM RESET {}", name)
        description = f"ALTER SYSTEM RESET {name} and reload"

    restart_context = row["context"] == "postmaster"
    result = dict(name=name, unit=unit, old_value=row["setting"], new_value=row["setting"],
                  configured_value=current_override, restart_required=bool(row["pending_restart"]), actions=[])
    if not needed:
        running = with_unit(row["setting"], unit)
        if desired is None:
            result["msg"] = f"{name} has no ALTER SYSTEM override (running {running})"
        elif row["pending_restart"]:
            result["msg"] = f"{name} already configured {p['value']} (running {running}, restart required)"
        else:
            result["msg"] = f"{name} already {running}"
        result["changed"] = False
        return result

    action = dict(description=description, statement=statement.as_string(conn), setting=name, value=p["value"])
    result["actions"].append(action)
    if module.check_mode:
        will_apply_now = not restart_context
        result["configured_value"] = p["value"] if desired is not None else None
        result["restart_required"] = restart_context or bool(row["pending_restart"])
        result["changed"] = True
        result["msg"] = f"would {description}" + ("" if will_apply_now else " (restart required to apply)")
        return result

    try:
        conn.execute(statement)
        after = reload_and_read(conn, name)
    except Exception as exc:
        module.fail_json(msg=f"{description} failed: {error_text(exc)}; connect as a superuser", **result)
    result.update(new_value=after["setting"], restart_required=bool(after["pending_restart"]),
                  configured_value=configured(conn, name), changed=True)
    result["msg"] = f"{name}: {with_unit(row['setting'], unit)} -> {with_unit(after['setting'], unit)}"
    if after["pending_restart"]:
        result["msg"] += f" (configured {result['configured_value'] or 'default'}, restart required)"
    return result


def main():
    module = AnsibleModule(
        argument_spec=postgres_argument_spec(
            name=dict(type="str", required=True),
            value=dict(type="str"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
        ),
        supports_check_mode=True,
    )
    exit_with_action(module, run)


if __name__ == "__main__":
    main()
