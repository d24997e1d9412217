#!/usr/bin/env node
// The gatehouse-gateway command: runs the compiled relay (src/bin/gatehouse-gateway.ts, built by
// `npm run build`). This file exists before the build so that npm can link it at install time.
import '../dist/bin/gatehouse-gateway.js';
