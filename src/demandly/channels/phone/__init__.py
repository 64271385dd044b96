"""The phone channel: Twilio connections and numbers, voice webhooks (gather mode), the Media
Streams bridge to realtime speech models (realtime mode), outbound calls and campaigns."""
