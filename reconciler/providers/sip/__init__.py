"""Extensions on a Kamailio SIP registrar."""
