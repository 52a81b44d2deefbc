"""The call simulator: a Twilio call played against the function (webhook, signed stream, 20 ms
µ-law frames), the caller's script, G.711 audio and WAV files, TwiML parsing, the bundled sample.
"""
