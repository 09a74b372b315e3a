/**
 * A fault-injecting HTTP proxy between the daemon and s3rver (loopback only). Faults are drawn
 * per request from the current settings; `outage()` closes the listener so connections are
 * refused, `restore()` listens again on the same port.
 */
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

export interface FaultSettings {
  /** Fraction of requests answered 503 SlowDown. */
  error503: number;
  /** Fraction of responses whose body is cut short (connection destroyed mid-body). */
  cutBody: number;
  /** Fraction of requests that hang (no answer) for `hangMs`. */
  hang: number;
  hangMs: number;
  /** Fraction of responses delayed by `slowMs`. */
  slow: number;
  slowMs: number;
}

export const NO_FAULTS: FaultSettings = { error503: 0, cutBody: 0, hang: 0, hangMs: 0, slow: 0, slowMs: 0 };

export interface FaultProxy {
  endpoint: string;
  port: number;
  set(f: Partial<FaultSettings>): void;
  outage(): Promise<void>;
  restore(): Promise<void>;
  stats: { requests: number; injected: number };
  stop(): Promise<void>;
}

export async function startFaultProxy(target: { host: string; port: number }, seed = 1): Promise<FaultProxy> {
  let faults: FaultSettings = { ...NO_FAULTS };
  let s = seed;
  const rnd = (): number => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const stats = { requests: 0, injected: 0 };
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const later = (ms: number, fn: () => void): void => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
  };

  const forward = (req: IncomingMessage, res: ServerResponse, body: Buffer): void => {
    const cut = rnd() < faults.cutBody;
    const up = request(
      { host: target.host, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        if (cut && Number(upRes.headers['content-length'] ?? 0) > 16) {
          stats.injected++;
          let sent = 0;
          upRes.on('data', (d: Buffer) => {
            if (sent < 8) res.write(d.subarray(0, 8 - sent));
            sent += d.length;
            if (sent >= 8) {
              upRes.destroy();
              res.socket?.destroy();
            }
          });
          return;
        }
        upRes.pipe(res);
      },
    );
    up.on('error', () => res.socket?.destroy());
    up.end(body);
  };

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    stats.requests++;
    const chunks: Buffer[] = [];
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const r = rnd();
      let acc = faults.error503;
      if (r < acc) {
        stats.injected++;
        res.writeHead(503, { 'content-type': 'application/xml' });
        res.end(
          '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>injected</Message></Error>',
        );
        return;
      }
      acc += faults.hang;
      if (r < acc) {
        stats.injected++;
        later(faults.hangMs, () => res.socket?.destroy());
        return;
      }
      acc += faults.slow;
      if (r < acc) {
        stats.injected++;
        later(faults.slowMs, () => forward(req, res, body));
        return;
      }
      forward(req, res, body);
    });
  };

  let server: Server = createServer(handler);
  const listen = (srv: Server, port: number): Promise<number> =>
    new Promise((resolve, reject) => {
      srv.on('connection', (c: Socket) => {
        sockets.add(c);
        c.on('close', () => sockets.delete(c));
      });
      srv.once('error', reject);
      srv.listen(port, '127.0.0.1', () => {
        const a = srv.address();
        resolve(typeof a === 'object' && a ? a.port : port);
      });
    });
  const port = await listen(server, 0);
  const close = (srv: Server): Promise<void> =>
    new Promise((r) => {
      for (const c of sockets) c.destroy();
      srv.close(() => r());
    });

  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    stats,
    set: (f) => {
      faults = { ...faults, ...f };
    },
    outage: () => close(server),
    restore: async () => {
      server = createServer(handler);
      await listen(server, port);
    },
    stop: async () => {
      for (const t of timers) clearTimeout(t);
      await close(server);
    },
  };
}
