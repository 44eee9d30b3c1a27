"""Run storage: the interface (:mod:`.base`), its records (:mod:`.records`) and the shared SQL
implementation (:mod:`.sql`) that every SQL backend plugin builds on."""
