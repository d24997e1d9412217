/** Registers every node type (docs/workflows.md, "Nodes"). */
import './core.js';
import './logic.js';
import './storage.js';
import './device.js';
import './http.js';
