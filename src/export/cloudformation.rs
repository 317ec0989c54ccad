//! `drflow export --format cloudformation`: a template deploying the exported state machine.
