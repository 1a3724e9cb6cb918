"""The clock: one idempotent `tick(now)` performs every time-driven step that is due
(app/clock/service.py); `flask clock` runs it in a loop, `app.clock.jobs.tick_job` from RQ."""
