// A gateway reporting for its peripherals with @gatehouse/client: store-and-forward on disk,
// reconnection with backoff, commands and rejections per peripheral.
// Usage: GATEWAY_ID=... KEY=... SECRET=... PERIPHERALS=id1,id2 node gateway.mjs [mqtt://127.0.0.1:1883]
import { Gateway } from '@gatehouse/client';

const { GATEWAY_ID, KEY, SECRET, PERIPHERALS = '' } = process.env;
const gateway = new Gateway({
  id: GATEWAY_ID,
  key: KEY,
  secret: SECRET,
  url: process.argv[2] ?? 'mqtt://127.0.0.1:1883',
  queue: { dir: `./gatehouse-queue/${GATEWAY_ID}`, maxMessages: 50_000 },
});

gateway.on('connect', () => console.log(`connected as gateway ${gateway.id}`));
gateway.on('offline', () => console.log(`offline; ${gateway.queued} states wait in the queue`));
gateway.on('reconnected', () => console.log(`back online; draining ${gateway.queued} states`));
gateway.on('command', (c) => console.log(`command for the gateway: ${c.name}`, c.payload));
gateway.on('rejected', (r) => console.log(`refused for ${r.deviceId} (${r.code}): ${r.message}`));
gateway.on('dropped', (d) => console.log(`queue full: dropped a state of ${d.deviceId} (${d.total} so far)`));

const sensors = PERIPHERALS.split(',')
  .filter(Boolean)
  .map((id) => {
    const peripheral = gateway.addPeripheral(id);
    peripheral.on('command', (c) => console.log(`command for ${id}: ${c.name}`, c.payload));
    return peripheral;
  });

gateway.connect().catch((err) => {
  console.error(err.message); // bad credentials: CONNACK 4 or 5
  process.exit(1);
});

const timer = setInterval(async () => {
  await gateway.sendState({ cpuTemp: 40 + Math.random() * 10 });
  for (const sensor of sensors) {
    // In real life this reading comes over Bluetooth or a serial line.
    const result = await sensor.sendState({ temperature: 20 + Math.round(Math.random() * 50) / 10 });
    console.log(`${sensor.id}: ${result}`); // 'sent' (stored by Gatehouse) or 'queued' (offline)
  }
}, 5000);

process.on('SIGINT', async () => {
  clearInterval(timer);
  await gateway.disconnect(); // what is not acknowledged stays in the queue for next time
  process.exit(0);
});
