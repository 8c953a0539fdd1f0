"""Recognition rules: match decisions, tracking over frames, enrolment and the unknown-faces inbox."""
