"""Listener feedback: what listeners keep steers what the line makes, and refines its models.

    layouts.py    the analytics export layouts (DistroKid bank details, a per-play log)
    ingest.py     streamed, idempotent import; refused rows kept with line and reason
    measures.py   per-track rates; per-attribute Beta posteriors with shrinkage; the preference model
    planner.py    Thompson sampling of a night's attributes (engine/planning.py `plan_night` uses it)
    nightly.py    the nightly plan drawn from feedback, kept reproducible; the review queue's filling
    review.py     verdicts (ratings, approve/reject) and the review queue (active learning)
    experiments.py A/B assignment by hash, and the effect with its uncertainty
    evaluation.py the offline evaluation and gate a refined melody model must pass
    refinement.py the refinement cycle: kept melodies (or lyrics) → candidate → gate → promote
    report.py     `songmill feedback report` (tables, SVG plots)
    simulate.py   a synthetic population with hidden tastes, to show the loop learns them

It sits beside the engine: it reads the catalogue, the models and the gate's measures.
"""
