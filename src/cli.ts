#!/usr/bin/env node
/** The `gatehouse` command. */
import { Command } from 'commander';
import { ConfigError, resolveConfig } from './config.js';
import { startGatehouse } from './server.js';

const program = new Command()
  .name('gatehouse')
  .description('Self-hosted IoT device platform: devices, gateways and peripherals over MQTT and REST');

program
  .command('serve')
  .description('run the platform (MQTT broker and REST API)')
  .option('--data-dir <dir>', 'data directory (env GATEHOUSE_DATA_DIR, default ./data)')
  .option('--host <host>', 'address to listen on (env GATEHOUSE_HOST, default 127.0.0.1)')
  .option('--mqtt-port <port>', 'MQTT TCP port, 0 picks a free one (env GATEHOUSE_MQTT_PORT, default 1883)')
  .option('--http-port <port>', 'HTTP and MQTT-over-WebSocket port (env GATEHOUSE_HTTP_PORT, default 8080)')
  .option('--mqtts-port <port>', 'MQTT over TLS port (env GATEHOUSE_MQTTS_PORT, default 8883)')
  .option('--tls-cert <file>', 'PEM certificate enabling MQTT over TLS (env GATEHOUSE_TLS_CERT)')
  .option('--tls-key <file>', 'PEM private key for --tls-cert (env GATEHOUSE_TLS_KEY)')
  .option(
    '--log-level <level>',
    'fatal, error, warn, info, debug, trace or silent (env GATEHOUSE_LOG_LEVEL, default info)',
  )
  .action(async (flags: Record<string, string | undefined>) => {
    try {
      const config = resolveConfig(flags);
      const running = await startGatehouse(config);
      if (running.generatedAdminToken) {
        console.log(`admin API token (shown once, store it now): ${running.generatedAdminToken}`);
      }
      console.log(`mqtt listening on ${running.urls.mqtt}`);
      if (running.urls.mqtts) console.log(`mqtts listening on ${running.urls.mqtts}`);
      console.log(`http listening on ${running.urls.http}`);
      console.log(`ws listening on ${running.urls.ws}`);
      let signalled = false;
      const shutdown = (signal: string) => {
        if (signalled) return;
        signalled = true;
        console.log(`${signal} received, shutting down`);
        running.stop().then(
          () => process.exit(0),
          (err: unknown) => {
            console.error(`error during shutdown: ${(err as Error).message}`);
            process.exit(1);
          },
        );
      };
      process.on('SIGINT', () => shutdown('SIGINT'));
      process.on('SIGTERM', () => shutdown('SIGTERM'));
    } catch (err) {
      if (err instanceof ConfigError) console.error(`gatehouse: ${err.message}`);
      else console.error(`gatehouse: failed to start: ${(err as Error).stack ?? err}`);
      process.exit(1);
    }
  });

await program.parseAsync();
