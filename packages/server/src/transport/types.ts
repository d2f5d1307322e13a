/** What a Connection needs from its socket. */
export interface Transport {
  send(data: string | Uint8Array, binary: boolean): void;
  ping(): void;
  close(code: number, reason: string): void;
  /** Destroys the socket without a closing handshake (dead peers). */
  terminate(): void;
  /** Bytes queued for the socket and not yet handed to the kernel. */
  readonly bufferedAmount: number;
}
