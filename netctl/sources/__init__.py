"""Where intent and switch state come from: xapi (`xapi/`) and the switches."""
