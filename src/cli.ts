#!/usr/bin/env node
/** The `gatehouse` command. */
import { Command } from 'commander';
import { ConfigError, resolveConfig, resolveDataDir } from './config.js';
import { createAdminToken, startGatehouse } from './server.js';

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
  .option(
    '--metrics-token <token>',
    'bearer token GET /metrics requires (env GATEHOUSE_METRICS_TOKEN; default: public)',
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

program
  .command('token')
  .description('manage API tokens')
  .command('create')
  .description(
    'create an API token and print it once; works while a server runs on the same data directory, which accepts it at once',
  )
  .requiredOption('--admin', 'an admin token, which sees every application (the only kind there is yet)')
  .option('--name <name>', 'what the token is for (default admin)')
  .option('--data-dir <dir>', 'data directory (env GATEHOUSE_DATA_DIR, default ./data)')
  .action(async (flags: { name?: string; dataDir?: string }) => {
    try {
      const token = await createAdminToken(resolveDataDir(flags.dataDir), flags.name ?? 'admin');
      console.log(`admin API token (shown once, store it now): ${token}`);
    } catch (err) {
      if (err instanceof ConfigError) console.error(`gatehouse: ${err.message}`);
      else console.error(`gatehouse: cannot create the token: ${(err as Error).stack ?? err}`);
      process.exit(1);
    }
  });

await program.parseAsync();
