"""Supply chain: provenance of every admitted artifact, signed attestations (DSSE + in-toto),
SBOMs of module graphs (MVS, SPDX, CycloneDX), licence detection and licence policy."""
