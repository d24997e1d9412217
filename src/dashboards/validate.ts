/**
 * Validation of a dashboard on save, as a whole: every problem names the block (its index and
 * id) and the field at fault: `blocks/2 (id "temp", graph): config/segments/0/attribute is required`.
 */
import { randomBytes } from 'node:crypto';
import { GatehouseError } from '../core/errors.js';
import { checkBlockConfig } from './blocks.js';
import {
  BLOCK_TYPES,
  type BlockInput,
  type BlockType,
  type DashboardBlock,
  GRID_COLUMNS,
  MAX_BLOCK_HEIGHT,
  MAX_BLOCKS,
  MAX_DASHBOARD_BYTES,
  MAX_GRID_ROW,
} from './model.js';

const isBlockType = (t: string): t is BlockType => (BLOCK_TYPES as readonly string[]).includes(t);
/** Positions and sizes are in steps of half a grid unit. */
const onHalfSteps = (n: number) => Number.isFinite(n) && Number.isInteger(n * 2);

/** An id for a block sent without one: short, as Losant's are, and unlikely to meet another. */
const newBlockId = () => randomBytes(6).toString('hex');

interface Placed {
  where: string;
  startX: number;
  startY: number;
  width: number;
  height: number;
}

const overlap = (a: Placed, b: Placed) =>
  a.startX < b.startX + b.width &&
  b.startX < a.startX + a.width &&
  a.startY < b.startY + b.height &&
  b.startY < a.startY + a.height;

/**
 * The blocks as stored, or a 400 naming the first problems. A block's `applicationId` may be
 * given (Losant's exports carry it) but must be the dashboard's own: blocks read only the
 * application the dashboard belongs to.
 */
export function validBlocks(applicationId: string, blocks: BlockInput[]): DashboardBlock[] {
  const problems: string[] = [];
  if (blocks.length > MAX_BLOCKS) problems.push(`blocks: at most ${MAX_BLOCKS} blocks`);
  const ids = new Set<string>();
  const placed: Placed[] = [];
  const result: DashboardBlock[] = [];
  blocks.slice(0, MAX_BLOCKS).forEach((block, i) => {
    const where = `blocks/${i}${block.id !== undefined ? ` (id ${JSON.stringify(block.id)}, ${block.blockType})` : ` (${block.blockType})`}`;
    const at = (message: string) => problems.push(`${where}: ${message}`);
    if (!isBlockType(block.blockType)) {
      at(`blockType must be one of ${BLOCK_TYPES.join(', ')}`);
      return;
    }
    if (block.id !== undefined) {
      if (ids.has(block.id)) at('id is used by another block');
      ids.add(block.id);
    }
    if (block.applicationId !== undefined && block.applicationId !== applicationId) {
      at(`applicationId must be the dashboard's application (${applicationId}) or left out`);
    }
    const { startX, startY, width, height } = block;
    for (const [name, value] of Object.entries({ startX, startY, width, height })) {
      if (!onHalfSteps(value)) at(`${name} must be a multiple of 0.5`);
    }
    if (startX < 0 || startX > GRID_COLUMNS - 0.5) at(`startX must be between 0 and ${GRID_COLUMNS - 0.5}`);
    if (startY < 0 || startY > MAX_GRID_ROW) at(`startY must be between 0 and ${MAX_GRID_ROW}`);
    if (width < 0.5 || width > GRID_COLUMNS) at(`width must be between 0.5 and ${GRID_COLUMNS}`);
    if (height < 0.5 || height > MAX_BLOCK_HEIGHT) at(`height must be between 0.5 and ${MAX_BLOCK_HEIGHT}`);
    if (startX + width > GRID_COLUMNS) at(`startX + width must not exceed ${GRID_COLUMNS} (the grid is 4 columns)`);
    const here = { where, startX, startY, width, height };
    const other = placed.find((p) => overlap(p, here));
    if (other) at(`overlaps ${other.where}`);
    placed.push(here);
    checkBlockConfig(block.blockType, block.config ?? {}, at);
    result.push({
      id: block.id ?? '',
      blockType: block.blockType,
      ...(block.title !== undefined ? { title: block.title } : {}),
      ...(block.description !== undefined ? { description: block.description } : {}),
      startX,
      startY,
      width,
      height,
      config: block.config ?? {},
    });
  });
  if (problems.length > 0) {
    const shown = problems.slice(0, 10).join('; ');
    const more = problems.length > 10 ? ` (and ${problems.length - 10} more)` : '';
    throw new GatehouseError('Validation', `the dashboard is not valid: ${shown}${more}`);
  }
  // Ids last, so that one chosen here cannot clash with one given later in the list.
  for (const block of result) {
    if (block.id !== '') continue;
    let id = newBlockId();
    while (ids.has(id)) id = newBlockId();
    ids.add(id);
    block.id = id;
  }
  return result;
}

/** Throws 400 when the dashboard, as JSON, is larger than a dashboard may be. */
export function assertDashboardSize(dashboard: unknown): void {
  const size = Buffer.byteLength(JSON.stringify(dashboard));
  if (size > MAX_DASHBOARD_BYTES) {
    throw new GatehouseError('Validation', `the dashboard is ${size} bytes; at most ${MAX_DASHBOARD_BYTES}`);
  }
}
