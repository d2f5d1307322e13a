/** What a Connection needs from its socket. */
export interface Transport {
  /** Queues a complete, pre-built WebSocket frame (see frames.ts). Frames keep their order. */
  sendFrame(frame: Buffer): void;
  /** Frames and queues one message. */
  send(payload: string | Uint8Array, binary: boolean): void;
  /** Flushes queued frames, then starts the closing handshake. */
  close(code: number, reason: string): void;
  /** Destroys the socket without a closing handshake (dead peers). */
  terminate(): void;
  /** A client frame has been handled: the transport may stop reading for a while (see WriteBatcher's turn budget). */
  inputHandled(): void;
  /**
   * Calls `cb` once, after the socket has handed what it holds to the kernel (soon, when it holds
   * nothing). The caller re-checks `bufferedAmount`: frames queued meanwhile may have filled it again.
   */
  whenDrained(cb: () => void): void;
  /** Bytes queued for the socket and not yet taken by the kernel. */
  readonly bufferedAmount: number;
  /**
   * At least `bufferedAmount` (but for the library's own control frames), and cheap: the hot path
   * compares this with its limit and reads `bufferedAmount` only when it is over.
   */
  readonly bufferedUpperBound: number;
}

/** What a transport calls as the socket reports (the mirror of the client SDK's transport listener). */
export interface TransportHandler {
  /** A complete client frame. */
  onFrame(data: Buffer, isBinary: boolean): void;
  /** The peer answered a ping. */
  onPong(): void;
  /** The socket failed (the close follows). */
  onSocketError(err: Error): void;
  /** The socket is closed, with the close code the peer sent (or 1006). */
  onTransportClosed(code: number): void;
}
