"""What the pages offer to whoever asked for them: the ``can`` of every template's context.

The checks that matter are the server's (each mutation asks :func:`runyard_webui.auth.refusal`,
docs/auth.md); this asks the same function, so the pages offer what the server would allow: a viewer
is not shown a **Launch run** that would be refused. A control the principal may not use is rendered
disabled, with a title naming the role it needs (``{{ can.attrs('launch_run', location) }}`` in its
tag), and the page's script leaves it so. A read-only web UI hides its controls instead, as it always
has: nobody at all can use them there.

``can`` is a mapping of :class:`~runyard.auth.Action` labels to whether the principal may do them
at all, whatever the code location (what the body's ``data-can`` gives the scripts), and a callable
for one code location: ``can('toggle_instigator', row.location)``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from markupsafe import Markup

from runyard.auth import Action, Principal

from .auth import ANY_LOCATION, refusal

#: the actions that change nothing: allowed in a read-only web UI
READS = frozenset({Action.READ, Action.READ_AUDIT_LOG})


class PagePermissions(Mapping[str, bool]):
    """What ``principal`` may do through the web UI of ``web`` (read-only or not)."""

    def __init__(self, principal: Principal, web: Any):
        self.principal = principal
        self.web = web
        self.read_only = bool(web.settings.read_only)
        self._answers: dict[tuple[Action, Any], str | None] = {}

    @staticmethod
    def _action(label: str) -> Action:
        try:
            return Action[label.upper()]
        except KeyError:
            # a template naming an action that does not exist is a bug to see, not a hidden button
            raise KeyError(f"no action '{label}': actions are {', '.join(a.label for a in Action)}") from None

    def _refusal(self, action: Action, location: Any) -> str | None:
        key = (action, location)
        if key not in self._answers:  # a list page asks once per code location, not once per row
            self._answers[key] = refusal(self.principal, action, location, self.web)
        return self._answers[key]

    def __call__(self, label: str, location: Any = ANY_LOCATION) -> bool:
        """Whether the principal may do ``label`` (on something of code location ``location`` when
        given; None is something without one, which only an unscoped principal reaches)."""
        return not self.why_not(label, location)

    def __getitem__(self, label: str) -> bool:
        return self(label)

    def __iter__(self) -> Iterator[str]:
        return (a.label for a in Action)

    def __len__(self) -> int:
        return len(Action)

    @property
    def allowed(self) -> list[str]:
        """The labels allowed anywhere, for the body's ``data-can``."""
        return [label for label in self if self(label)]

    def why_not(self, label: str, location: Any = ANY_LOCATION) -> str:
        """Why the principal may not do ``label`` (a disabled control's title), "" when it may."""
        action = self._action(label)
        if self.read_only and action not in READS:
            return "This web UI is read-only"
        why = self._refusal(action, location)
        if why is None:
            return ""
        if self.principal.role < action.role:
            return (f"Needs the {action.role.label} role (or above); {self.principal.name} is "
                    f"{self.principal.role.label}")
        return why

    def attrs(self, label: str, location: Any = ANY_LOCATION, *, disabled: bool = True) -> Markup:
        """`` disabled title="Needs the launcher role..." data-needs="launcher"`` when the principal
        may not do ``label``, else nothing: ``<button id="launch"{{ can.attrs('launch_run', loc) }}>``.
        ``disabled=False`` leaves ``disabled`` out, for a tag that has it already. Read-only mode adds
        nothing here: its templates hide their controls (or say so) themselves."""
        action = self._action(label)
        if self.read_only and action not in READS:
            return Markup("")
        why = self.why_not(label, location)
        if not why:
            return Markup("")
        return Markup('{} title="{}" data-needs="{}"').format(Markup(" disabled") if disabled else "", why,
                                                             action.role.label)
