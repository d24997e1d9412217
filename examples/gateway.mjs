// A gateway in a dozen lines: connects as the gateway, reports its own state and its
// peripherals' state over its one connection, and prints the commands sent to them.
// Usage: GATEWAY_ID=... KEY=... SECRET=... PERIPHERALS=id1,id2 node examples/gateway.mjs [mqtt://127.0.0.1:1883]
import mqtt from 'mqtt';

const { GATEWAY_ID, KEY, SECRET, PERIPHERALS = '' } = process.env;
const peripherals = PERIPHERALS.split(',').filter(Boolean);
const client = mqtt.connect(process.argv[2] ?? 'mqtt://127.0.0.1:1883', {
  clientId: GATEWAY_ID,
  username: KEY,
  password: SECRET,
});

client.on('connect', async () => {
  console.log(`connected as gateway ${GATEWAY_ID}`);
  await client.subscribeAsync([`losant/${GATEWAY_ID}/error`, ...peripherals.map((id) => `losant/${id}/command`)], {
    qos: 1,
  });
  await client.publishAsync(`losant/${GATEWAY_ID}/state`, JSON.stringify({ data: { cpuTemp: 48.5 } }), { qos: 1 });
  for (const id of peripherals) {
    // In real life this reading comes over Bluetooth or a serial line.
    const state = { data: { temperature: 20 + Math.round(Math.random() * 50) / 10 } };
    await client.publishAsync(`losant/${id}/state`, JSON.stringify(state), { qos: 1 });
    console.log(`reported ${JSON.stringify(state)} for peripheral ${id}`);
  }
});
client.on('message', (topic, payload) => console.log(`${topic} ${payload}`));
client.on('error', (err) => {
  console.error(`connection refused: ${err.message}`);
  process.exit(1);
});
