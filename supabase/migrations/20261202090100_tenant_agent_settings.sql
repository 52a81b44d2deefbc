-- What a tenant may store as its agent's settings: the same rules the function applies before a
-- session.update (supabase/functions/twilio-voice/agent_settings.ts). Before these, 3 MB of
-- instructions made every call of that tenant fail at setup, and any voice or model name reached
-- the model unchecked. NOT VALID: a row written before this migration is left as it is (the
-- function falls back to the default for a bad field); every new write is checked.
alter table public.tenant_agents
  add constraint tenant_agents_instructions_length check (char_length(instructions) <= 32000) not valid,
  add constraint tenant_agents_greeting_length check (char_length(greeting) <= 1000) not valid,
  -- The GA Realtime API's built-in voices.
  add constraint tenant_agents_voice_known check (
    voice in ('alloy', 'ash', 'ballad', 'coral', 'echo', 'sage', 'shimmer', 'verse', 'marin', 'cedar')
  ) not valid,
  add constraint tenant_agents_model_name check (model ~ '^[a-z0-9][a-z0-9._-]{0,63}$') not valid,
  add constraint tenant_agents_transcription_model_name
    check (transcription_model ~ '^[a-z0-9][a-z0-9._-]{0,63}$') not valid,
  add constraint tenant_agents_turn_detection_size check (length(turn_detection::text) <= 1000) not valid;
