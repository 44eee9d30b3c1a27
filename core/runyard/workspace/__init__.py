"""Code locations and workspaces.

* :mod:`.loader` — import a definitions file or module and find its :class:`runyard.Definitions`
  (what code servers and run workers do);
* :mod:`.config` — parse a workspace file (``workspace.yaml``) into :class:`.config.LocationOrigin` entries;
* :mod:`.workspace` — :class:`.workspace.Workspace`: a code server per local entry, started and
  supervised, and a :class:`runyard.codeserver.client.CodeServerClient` per location. What the
  daemon and the web UI use; it never imports user code.

Nothing is imported here, so ``import runyard.workspace.loader`` stays cheap.
"""
