"""Web pages for looking at picks: `epick view` (a job, with a threshold slider) and the live page of
`epick pick --watch --dashboard`. Standard-library HTTP server, plain HTML/CSS/JavaScript served
from ``static/`` (no build step, nothing fetched from the internet: works on an offline PC)."""
