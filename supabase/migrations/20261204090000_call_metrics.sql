-- What each call cost and how fast the agent answered, as the bridge measured it
-- (supabase/functions/twilio-voice/turn_latency.ts): per assistant turn the time from the
-- caller's end of speech to the first assistant audio sent to Twilio and to the first mark Twilio
-- echoed as played, the tool time before it; per call the p50/max of those, the audio each way
-- and the Realtime model whose tokens `usage` counts. The cost is derived from `usage` and a
-- price table at read time (supactl/database/call_costs.py), so a price change needs no rewrite
-- of the log. Written by the bridge (service role) only; tenants read it with the rest of the
-- row under the calls RLS policy.

alter table public.calls
  add column metrics jsonb not null default '{}'::jsonb
    constraint calls_metrics_is_object check (jsonb_typeof(metrics) = 'object');

comment on column public.calls.metrics is
  'Per-turn latency and audio of the call as the bridge measured it: turns[] (turn, '
  'firstAudioSentMs, firstAudioPlayedMs, toolMs), first_audio_sent_p50_ms/_max_ms, '
  'first_audio_played_p50_ms/_max_ms, audio_in_ms, audio_out_ms, model. '
  'Over all streams of a handed-off call (each resumed stream carries the earlier ones). '
  'Empty: written before the bridge measured.';
