"""Who is asking and what they may do: identities, tokens, JWT, roles over module patterns."""
