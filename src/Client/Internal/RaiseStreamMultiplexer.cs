using System.Threading.Channels;
using System.Threading.Tasks.Sources;
using Grpc.Core;
using HookBroker.Protocol.V1;
using Microsoft.Extensions.Logging;
using Polly;
using Outcome = Polly.Outcome;
using WireResult = HookBroker.Protocol.V1.RaiseResult;

namespace HookBroker.Client.Internal;

/// <summary>
/// Carries concurrent raises of one client on shared, long-lived <c>RaiseStream</c> calls, so a web app raising from
/// many requests at once pays one stream message per batch instead of one gRPC call per event.
/// <para>
/// A raise attempt (<see cref="RaiseAsync"/>) puts its request (already serialized: <see cref="EncodedRaise"/>)
/// into a bounded queue and awaits its own answer; attempts with the client's usual timeout share one deadline timer
/// (<see cref="AttemptDeadlines"/>), a wait-mode raise has its own. Each <em>lane</em> (one per broker node, at least
/// one) has a sender loop that takes whatever is queued, up to <see cref="MaxBatchItems"/> items or about
/// <see cref="MaxBatchBytes"/>, tags each item with a sequence number, and writes them as one
/// <c>RaiseStreamRequest</c> (<see cref="EncodedRaiseBatch"/>); the lane's reader loop completes each pending raise by the
/// sequence number of its <c>RaiseResult</c> (a failed item becomes the <see cref="RpcException"/> the unary call
/// would have thrown). Results come in any order, so a wait-mode raise never holds up the others.
/// </para>
/// <para>
/// The lane opens its call lazily, at its first batch, and reopens it after it ended. When a call ends (node died,
/// <c>UNAVAILABLE</c> at shutdown, connection reset), every raise still pending on it fails with a retriable
/// <c>UNAVAILABLE</c>, so the client's retry pipeline sends it again, with its idempotency key, on a fresh call (with
/// several nodes, the balancer puts a new call on a ready node). With several nodes, a lane also half-closes its call
/// after <see cref="RebalanceAfter"/> and opens another at its next batch, so raises keep spreading over the nodes as they
/// come and go (a half-closed call still delivers its outstanding answers). A broker without <c>RaiseStream</c>
/// (<c>UNIMPLEMENTED</c>) makes the raises it held go unary, and the client raises unary from then on.
/// </para>
/// </summary>
internal sealed class RaiseStreamMultiplexer : IAsyncDisposable
{
    /// <summary>Most raises in one stream message.</summary>
    public const int MaxBatchItems = 256;

    /// <summary>
    /// A batch stops growing once its raises reach this size (serialized), so a message stays far below gRPC's 4 MB
    /// default limit. A single raise larger than this travels unary (see <see cref="Accepts"/>), where a size error is
    /// that raise's alone.
    /// </summary>
    public const int MaxBatchBytes = 1 << 20;

    /// <summary>
    /// Messages a lane keeps unanswered at once (their wait-mode raises not counted: they are answered late by design).
    /// While they are out, raises gather in the queue and leave as the next, larger, message: the batch size follows the
    /// load with no added delay at low load, and the broker is never handed a flood of one-raise messages.
    /// </summary>
    public const int MaxMessagesInFlight = 4;

    /// <summary>A lane whose messages stay unanswered this long gives its call up as hung (its raises are retried).</summary>
    public static readonly TimeSpan StalledAfter = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Raises waiting to be sent (about 16,000: a busy app's concurrent raises queue at once); a full queue makes further
    /// raises wait for room (within their attempt timeout).
    /// </summary>
    public const int QueueCapacity = 64 * MaxBatchItems;

    /// <summary>With several nodes, how long a lane keeps one call before moving to a fresh one (rebalancing).</summary>
    public static readonly TimeSpan RebalanceAfter = TimeSpan.FromSeconds(5);

    private readonly CallInvoker invoker;
    private readonly Func<byte[], TimeSpan, CancellationToken, Task<Outcome<RaiseResponse>>> raiseUnary;
    private readonly AttemptDeadlines deadlines;
    private readonly TimeProvider time;
    private readonly ILogger logger;
    private readonly int laneCount;
    private readonly bool rebalance;
    private readonly Channel<PendingRaise> queue;
    private readonly CancellationTokenSource stopping = new();
    private readonly Lock gate = new();
    private readonly HashSet<StreamCall> calls = [];
    private Task[]? lanes;
    private volatile bool unsupported;
    private volatile bool disposed;

    /// <param name="invoker">The SDK channel's call invoker.</param>
    /// <param name="raiseUnary">Sends one raise unary, within a timeout (for a broker without <c>RaiseStream</c>).</param>
    /// <param name="nodes">How many broker nodes the channel balances over: one lane each.</param>
    /// <param name="attemptTimeout">The client's attempt timeout (what every raise but a wait-mode one has).</param>
    /// <param name="time">The clock for attempt timeouts and rebalancing (gRPC deadlines are not used here).</param>
    /// <param name="logger">Where stream changes are logged.</param>
    public RaiseStreamMultiplexer(
        CallInvoker invoker, Func<byte[], TimeSpan, CancellationToken, Task<Outcome<RaiseResponse>>> raiseUnary, int nodes, TimeSpan attemptTimeout, TimeProvider time, ILogger logger)
    {
        this.invoker = invoker;
        this.raiseUnary = raiseUnary;
        deadlines = new AttemptDeadlines(attemptTimeout, time);
        this.time = time;
        this.logger = logger;
        laneCount = Math.Max(1, nodes);
        rebalance = nodes > 1;
        queue = Channel.CreateBounded<PendingRaise>(new BoundedChannelOptions(QueueCapacity)
        {
            FullMode = BoundedChannelFullMode.Wait,
            SingleReader = laneCount == 1,
        });
    }

    /// <summary>False once a broker answered <c>UNIMPLEMENTED</c> to <c>RaiseStream</c>: raise unary.</summary>
    public bool IsSupported => !unsupported;

    /// <summary>Whether <paramref name="size"/> (a request's serialized size) may travel in a batch.</summary>
    public static bool Accepts(int size) => size <= MaxBatchBytes;

    /// <summary>
    /// One raise attempt through the shared stream. Its outcome (never thrown) is the broker's answer, or the
    /// <see cref="RpcException"/> the unary call would have thrown (<c>DEADLINE_EXCEEDED</c> past
    /// <paramref name="timeout"/>, <c>CANCELLED</c> when <paramref name="cancellationToken"/> fires, <c>UNAVAILABLE</c>
    /// when the stream broke before the answer), or <see cref="ObjectDisposedException"/> once the client is disposed.
    /// Canceling one raise leaves the stream and the other raises alone. Once the broker answers <c>UNIMPLEMENTED</c> to
    /// <c>RaiseStream</c>, the raises it held are sent unary.
    /// </summary>
    /// <remarks>
    /// An attempt with the client's usual timeout costs no async machinery here: it is queued, and what it returns is
    /// backed by the pending raise itself, which its answer, the shared deadline timer or its cancellation completes
    /// (no task, no completion source per raise). Await it once, as any <see cref="ValueTask{TResult}"/>.
    /// </remarks>
    public ValueTask<Outcome<RaiseResponse>> RaiseAsync(EncodedRaise raise, TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (disposed)
        {
            return ValueTask.FromResult(Outcome.FromException<RaiseResponse>(new ObjectDisposedException(nameof(HookBrokerClient))));
        }

        EnsureStarted();
        if (timeout != deadlines.Timeout)
        {
            return new ValueTask<Outcome<RaiseResponse>>(RaiseWithOwnTimeoutAsync(raise, timeout, cancellationToken));
        }

        var pending = new PendingRaise(this, raise, timeout, cancellationToken);
        deadlines.Track(pending);
        pending.WatchCancellation();
        if (!queue.Writer.TryWrite(pending))
        {
            _ = EnqueueWhenRoomAsync(queue.Writer, pending);
        }

        return pending.Outcome;
    }

    /// <summary>
    /// The queue is full: <paramref name="pending"/> waits for room. Its deadline (the shared timer) and its caller's token
    /// end it meanwhile as they would in the queue, and its wait with it; it costs no timer of its own, so a burst of
    /// raises beyond the queue's capacity stays cheap.
    /// </summary>
    private static async Task EnqueueWhenRoomAsync(ChannelWriter<PendingRaise> writer, PendingRaise pending)
    {
        try
        {
            await writer.WriteAsync(pending, pending.WaitForRoom());
        }
        catch (OperationCanceledException)
        {
            // It ended while waiting (timed out or canceled): its outcome is already set.
        }
        catch (ChannelClosedException)
        {
            pending.Fail(new ObjectDisposedException(nameof(HookBrokerClient)));
        }
    }

    /// <summary>A wait-mode attempt: its own timeout (the attempt timeout plus the wait), with its own timer.</summary>
    private async Task<Outcome<RaiseResponse>> RaiseWithOwnTimeoutAsync(EncodedRaise raise, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var pending = new PendingRaise(this, raise, timeout, cancellationToken);
        var started = time.GetTimestamp();
        try
        {
            if (!queue.Writer.TryWrite(pending))
            {
                // The queue is full: wait for room, within the attempt's timeout.
                using var timeoutSource = new CancellationTokenSource(timeout, time);
                using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeoutSource.Token);
                try
                {
                    await queue.Writer.WriteAsync(pending, linked.Token);
                }
                catch (OperationCanceledException) when (timeoutSource.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
                {
                    throw new TimeoutException();
                }
            }

            var left = timeout - time.GetElapsedTime(started);
            return await pending.Outcome.AsTask().WaitAsync(left > TimeSpan.Zero ? left : TimeSpan.Zero, time, cancellationToken);
        }
        catch (TimeoutException)
        {
            pending.Abandon();
            return Outcome.FromException<RaiseResponse>(TimedOut(timeout));
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            pending.Abandon();
            return Outcome.FromException<RaiseResponse>(Canceled());
        }
        catch (ChannelClosedException)
        {
            return Outcome.FromException<RaiseResponse>(new ObjectDisposedException(nameof(HookBrokerClient)));
        }
    }

    private static RpcException TimedOut(TimeSpan timeout) =>
        new(new Status(StatusCode.DeadlineExceeded, $"No answer within {timeout} (attempt timeout)."));

    private static RpcException Canceled() => new(new Status(StatusCode.Cancelled, "The raise was canceled."));

    /// <summary>Stops the lanes and ends their calls; raises still waiting fail with <see cref="ObjectDisposedException"/>.</summary>
    public async ValueTask DisposeAsync()
    {
        if (disposed)
        {
            return;
        }

        disposed = true;
        queue.Writer.TryComplete();
        await stopping.CancelAsync();
        if (Volatile.Read(ref lanes) is { } running)
        {
            await Task.WhenAll(running);
        }

        StreamCall[] open;
        lock (gate)
        {
            open = [.. calls];
        }

        foreach (var call in open)
        {
            call.Grpc.Dispose(); // cancels the call: its reader fails what it still holds
        }

        await Task.WhenAll(open.Select(c => c.Reader));
        while (queue.Reader.TryRead(out var left))
        {
            left.Fail(new ObjectDisposedException(nameof(HookBrokerClient)));
        }

        stopping.Dispose();
        deadlines.Dispose();
    }

    private void EnsureStarted()
    {
        if (Volatile.Read(ref lanes) is not null)
        {
            return;
        }

        lock (gate)
        {
            if (lanes is null && !disposed)
            {
                Volatile.Write(ref lanes, [.. Enumerable.Range(0, laneCount).Select(_ => Task.Run(RunLaneAsync))]);
            }
        }
    }

    /// <summary>One lane: takes what is queued, as one message on the lane's call.</summary>
    private async Task RunLaneAsync()
    {
        var reader = queue.Reader;
        var batch = new List<PendingRaise>(MaxBatchItems);
        StreamCall? call = null;
        try
        {
            while (await reader.WaitToReadAsync(stopping.Token))
            {
                if (unsupported)
                {
                    while (reader.TryRead(out var pending))
                    {
                        pending.SendUnary();
                    }

                    continue;
                }

                if (call is not null && (call.IsClosed || (rebalance && time.GetElapsedTime(call.OpenedAt) >= RebalanceAfter)))
                {
                    if (!call.IsClosed)
                    {
                        await RetireAsync(call);
                    }

                    call = null;
                }

                call ??= Open();

                // Wait for a free message slot while raises keep gathering in the queue.
                if (!await call.Slots.WaitAsync(StalledAfter, stopping.Token))
                {
                    ClientLog.RaiseStreamStalled(logger, StalledAfter);
                    call.Grpc.Dispose(); // its reader fails the pending raises as retriable
                    call = null;
                    continue;
                }

                if (call.IsClosed)
                {
                    continue; // woken by the end of the call: the next round opens another
                }

                batch.Clear();
                var bytes = 0;
                while (batch.Count < MaxBatchItems && bytes < MaxBatchBytes && reader.TryRead(out var pending))
                {
                    if (!pending.IsDone)
                    {
                        batch.Add(pending); // not canceled or timed out while queued
                        bytes += pending.Size;
                    }
                }

                if (batch.Count == 0)
                {
                    call.Slots.Release(); // another lane took them
                    continue;
                }

                if (!await SendAsync(call, batch))
                {
                    call = null;
                }
            }
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            // disposed
        }
    }

    /// <summary>Writes <paramref name="batch"/> as one message on <paramref name="call"/>; false when the call is broken.</summary>
    private async Task<bool> SendAsync(StreamCall call, List<PendingRaise> batch)
    {
        var message = new EncodedRaiseBatch(batch.Count);
        if (!call.Register(batch, message))
        {
            // It ended between the check and now (its node is going away): the retry pipeline takes it from here.
            foreach (var pending in batch)
            {
                pending.Fail(StreamBroken(call.EndStatus));
            }

            return false;
        }

        try
        {
            await call.Grpc.RequestStream.WriteAsync(message, stopping.Token);
            return true;
        }
        catch (Exception e) when (e is RpcException or IOException or InvalidOperationException or ObjectDisposedException or OperationCanceledException)
        {
            // The call is broken: ending it makes its reader fail every pending raise (this batch included) as retriable.
            ClientLog.RaiseStreamWriteFailed(logger, e.Message);
            call.Grpc.Dispose();
            if (e is OperationCanceledException && stopping.IsCancellationRequested)
            {
                throw;
            }

            return false;
        }
    }

    private StreamCall Open()
    {
        var grpc = invoker.AsyncDuplexStreamingCall(RawRaiseMethods.RaiseStream, host: null, new CallOptions());
        var call = new StreamCall(grpc, time.GetTimestamp());
        lock (gate)
        {
            calls.Add(call);
        }

        call.Reader = Task.Run(() => ReadAsync(call));
        ClientLog.RaiseStreamOpened(logger);
        return call;
    }

    /// <summary>Half-closes <paramref name="call"/>: the broker answers what it holds, then ends it (its reader sees the end).</summary>
    private static async Task RetireAsync(StreamCall call)
    {
        try
        {
            await call.Grpc.RequestStream.CompleteAsync();
        }
        catch (Exception e) when (e is RpcException or IOException or InvalidOperationException or ObjectDisposedException)
        {
            call.Grpc.Dispose(); // already broken: its reader fails what is pending
        }
    }

    /// <summary>Completes each raise pending on <paramref name="call"/> by its result; fails the rest when the call ends.</summary>
    private async Task ReadAsync(StreamCall call)
    {
        Status end;
        var completed = new List<(PendingRaise Pending, WireResult Result)>();
        try
        {
            var responses = call.Grpc.ResponseStream;
            while (await responses.MoveNext(CancellationToken.None))
            {
                completed.Clear();
                call.Take(responses.Current.Results, completed);
                foreach (var (pending, result) in completed)
                {
                    var code = (StatusCode)(result.Status?.Code ?? 0);
                    if (code == StatusCode.OK)
                    {
                        pending.Complete(result.Response ?? new RaiseResponse());
                    }
                    else
                    {
                        pending.Fail(new RpcException(new Status(code, result.Status?.Message ?? string.Empty)));
                    }
                }
            }

            end = call.Grpc.GetStatus();
        }
        catch (RpcException e)
        {
            end = e.Status;
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or ObjectDisposedException or OperationCanceledException)
        {
            end = new Status(StatusCode.Unavailable, e.Message);
        }

        var orphans = call.Close(end);
        lock (gate)
        {
            calls.Remove(call);
        }

        call.Grpc.Dispose();
        if (end.StatusCode == StatusCode.Unimplemented)
        {
            unsupported = true;
            ClientLog.RaiseStreamUnsupported(logger, end.Detail);
        }
        else if (orphans.Count > 0 && !disposed)
        {
            ClientLog.RaiseStreamEnded(logger, end.StatusCode.ToString(), end.Detail, orphans.Count);
        }

        foreach (var pending in orphans)
        {
            if (end.StatusCode == StatusCode.Unimplemented && !disposed)
            {
                pending.SendUnary();
            }
            else
            {
                pending.Fail(disposed ? new ObjectDisposedException(nameof(HookBrokerClient)) : StreamBroken(end));
            }
        }
    }

    /// <summary>
    /// What a raise left unanswered by an ended call fails with: retriable <c>UNAVAILABLE</c> (the call broke, or ended
    /// early), or the call's own status when it is a definite refusal (e.g. <c>PERMISSION_DENIED</c>), as unary would.
    /// </summary>
    private static RpcException StreamBroken(Status end)
    {
        var code = end.StatusCode switch
        {
            StatusCode.InvalidArgument or StatusCode.ResourceExhausted or StatusCode.PermissionDenied or StatusCode.Unauthenticated
                or StatusCode.FailedPrecondition or StatusCode.NotFound or StatusCode.OutOfRange => end.StatusCode,
            _ => StatusCode.Unavailable,
        };
        return new RpcException(new Status(code, $"The RaiseStream call ended before answering ({end.StatusCode}: {end.Detail})"));
    }

    /// <summary>One <c>RaiseStream</c> call and the raises sent on it that wait for their result.</summary>
    private sealed class StreamCall(AsyncDuplexStreamingCall<EncodedRaiseBatch, RaiseStreamResponse> grpc, long openedAt)
    {
        private readonly Lock gate = new();
        private readonly Dictionary<ulong, PendingRaise> pending = [];
        private ulong nextSequence;
        private volatile bool closed;

        public AsyncDuplexStreamingCall<EncodedRaiseBatch, RaiseStreamResponse> Grpc { get; } = grpc;

        public long OpenedAt { get; } = openedAt;

        public Task Reader { get; set; } = Task.CompletedTask;

        public bool IsClosed => closed;

        public Status EndStatus { get; private set; }

        /// <summary>Free message slots (<see cref="MaxMessagesInFlight"/>); released as messages are answered, all at the end.</summary>
        public SemaphoreSlim Slots { get; } = new(MaxMessagesInFlight);

        /// <summary>Numbers the batch into <paramref name="message"/> and keeps it pending; false once the call ended.</summary>
        public bool Register(List<PendingRaise> batch, EncodedRaiseBatch message)
        {
            lock (gate)
            {
                if (closed)
                {
                    return false;
                }

                var tracker = new MessageTracker(batch.Count(r => !r.Raise.Waits));
                foreach (var raise in batch)
                {
                    var sequence = ++nextSequence;
                    raise.Attach(raise.Raise.Waits ? null : tracker);
                    pending[sequence] = raise;
                    message.Add(sequence, raise.Raise.Bytes);
                }

                if (tracker.IsAnswered)
                {
                    Slots.Release(); // only wait-mode raises: they do not hold the slot
                }

                return true;
            }
        }

        /// <summary>Removes the raises answered by <paramref name="results"/> (unknown sequences: abandoned raises).</summary>
        public void Take(IEnumerable<WireResult> results, List<(PendingRaise, WireResult)> answered)
        {
            lock (gate)
            {
                foreach (var result in results)
                {
                    if (pending.Remove(result.Sequence, out var raise))
                    {
                        answered.Add((raise, result));
                        if (raise.Tracker?.Answer() == true)
                        {
                            Slots.Release();
                        }
                    }
                }
            }
        }

        /// <summary>Marks the call ended: no more raises are registered; returns those left unanswered.</summary>
        public List<PendingRaise> Close(Status end)
        {
            lock (gate)
            {
                EndStatus = end;
                closed = true;
                var left = pending.Values.ToList();
                pending.Clear();
                Slots.Release(MaxMessagesInFlight); // wakes a lane waiting for a slot: it moves to a new call
                return left;
            }
        }
    }

    /// <summary>
    /// One raise attempt in flight, and the source of the value task its caller awaits: completed once (the first of its
    /// answer, its failure, its timeout or its cancellation wins), never reused.
    /// </summary>
    private sealed class PendingRaise(RaiseStreamMultiplexer owner, EncodedRaise raise, TimeSpan timeout, CancellationToken cancellationToken)
        : AttemptDeadlines.Node, IValueTaskSource<Outcome<RaiseResponse>>
    {
        private readonly long started = owner.time.GetTimestamp();

        // Its continuation runs on the thread pool, never inline on the lane's reader loop or the deadline timer.
        private ManualResetValueTaskSourceCore<Outcome<RaiseResponse>> completion = new() { RunContinuationsAsynchronously = true };
        private int done;
        private CancellationTokenRegistration canceling;
        private CancellationTokenSource? waitingForRoom;
        private bool tracked;

        public EncodedRaise Raise { get; } = raise;

        public int Size => Raise.Size;

        /// <summary>Its outcome: the answer, or the failure (never thrown: the client's pipeline takes outcomes as they are).</summary>
        public ValueTask<Outcome<RaiseResponse>> Outcome => new(this, completion.Version);

        /// <summary>What is left of its attempt timeout.</summary>
        public TimeSpan TimeLeft => timeout - owner.time.GetElapsedTime(started) is var left && left > TimeSpan.Zero ? left : TimeSpan.Zero;

        /// <summary>True once its outcome is decided (it may still be on its way to the caller).</summary>
        public bool IsDone => Volatile.Read(ref done) != 0;

        /// <summary>The message it was sent in, when its answer frees a slot (not in wait mode).</summary>
        public MessageTracker? Tracker { get; private set; }

        public void Attach(MessageTracker? tracker) => Tracker = tracker;

        /// <summary>A token that fires once it is done (answered, failed, timed out or canceled): ends its wait for room.</summary>
        public CancellationToken WaitForRoom()
        {
            var source = new CancellationTokenSource();
            // A full fence, so that either this sees it done or Finished sees the source (both may: Cancel is idempotent).
            Interlocked.Exchange(ref waitingForRoom, source);
            if (IsDone)
            {
                source.Cancel(); // done before the source was there: Finished did not see it
            }

            return source.Token;
        }

        /// <summary>For an attempt on the shared deadline timer: its caller's token ends it with <c>CANCELLED</c>.</summary>
        public void WatchCancellation()
        {
            tracked = true;
            if (cancellationToken.CanBeCanceled)
            {
                canceling = cancellationToken.UnsafeRegister(static state => ((PendingRaise)state!).Cancel(), this);
            }
        }

        public void Complete(RaiseResponse response)
        {
            if (Decide())
            {
                completion.SetResult(Polly.Outcome.FromResult(response));
                Finished();
            }
        }

        public void Fail(Exception exception)
        {
            if (Decide())
            {
                completion.SetResult(Polly.Outcome.FromException<RaiseResponse>(exception));
                Finished();
            }
        }

        /// <summary>Its caller's token fired: <c>CANCELLED</c> (not sent if still queued; a later answer is ignored).</summary>
        public void Cancel() => Fail(Canceled());

        /// <summary>
        /// Its caller stopped waiting (own-timeout attempts): not sent if still queued; if already sent, its answer (still
        /// counted for the message's slot) is ignored.
        /// </summary>
        public void Abandon()
        {
            if (Decide())
            {
                completion.SetException(new OperationCanceledException());
            }
        }

        Outcome<RaiseResponse> IValueTaskSource<Outcome<RaiseResponse>>.GetResult(short token) => completion.GetResult(token);

        ValueTaskSourceStatus IValueTaskSource<Outcome<RaiseResponse>>.GetStatus(short token) => completion.GetStatus(token);

        void IValueTaskSource<Outcome<RaiseResponse>>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            completion.OnCompleted(continuation, state, token, flags);

        /// <summary>The broker has no <c>RaiseStream</c>: this attempt goes unary, within what is left of its timeout.</summary>
        public void SendUnary() => _ = RelayUnaryAsync();

        /// <summary>Its attempt timeout passed (the shared deadline timer): <c>DEADLINE_EXCEEDED</c>.</summary>
        protected internal override void OnTimeout() => Fail(TimedOut(timeout));

        private async Task RelayUnaryAsync()
        {
            try
            {
                var outcome = await owner.raiseUnary(Raise.Bytes, TimeLeft, cancellationToken);
                if (outcome.Exception is { } failure)
                {
                    Fail(failure);
                }
                else
                {
                    Complete(outcome.Result ?? throw new InvalidOperationException("A unary raise ended with neither an answer nor an error."));
                }
            }
            catch (Exception e)
            {
                Fail(e);
            }
        }

        /// <summary>True for the one caller that decides its outcome (an answer may race its timeout or cancellation).</summary>
        private bool Decide() => Interlocked.Exchange(ref done, 1) == 0;

        private void Finished()
        {
            // No timer: nothing to dispose once canceled.
            Interlocked.Exchange(ref waitingForRoom, null)?.Cancel();
            if (tracked)
            {
                canceling.Unregister();
                owner.deadlines.Untrack(this);
            }
        }
    }

    /// <summary>Counts the answers a sent message still waits for (wait-mode raises left out).</summary>
    private sealed class MessageTracker(int unanswered)
    {
        private int unanswered = unanswered;

        public bool IsAnswered => Volatile.Read(ref unanswered) == 0;

        /// <summary>True for the answer that completes the message.</summary>
        public bool Answer() => Interlocked.Decrement(ref unanswered) == 0;
    }
}
