"""Facts shared by the write side (runs, launchers) and the read side (readers, analysis):
process exit codes (:mod:`.exit_codes`) and run statuses (:mod:`.status`). Nothing here imports
TensorFlow, gin or Sacred."""
