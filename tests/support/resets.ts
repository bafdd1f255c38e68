/**
 * Connections that send a TCP reset before the server has accepted them: connect, set SO_LINGER to 0, close.
 * Deno has no setsockopt, so Debian's python3 (always at /usr/bin/python3 there) opens them.
 */

const SCRIPT = `
import socket, struct, sys
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for _ in range(count):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.connect((host, port))
    s.close()
`;

export const PYTHON = "/usr/bin/python3";

/** Opens `count` connections to `hostname:port`, each reset at once; resolves when all are sent. */
export async function sendResets(port: number, count: number, hostname = "127.0.0.1"): Promise<void> {
  const out = await new Deno.Command(PYTHON, {
    args: ["-c", SCRIPT, hostname, String(port), String(count)],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`Sending resets failed: ${new TextDecoder().decode(out.stderr)}`);
}
