using System.Threading.Channels;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using HookBroker.Broker.Storage;
using HookBroker.Wire;
using HookBroker.Protocol.V1;

namespace HookBroker.Broker.Core;

/// <summary>
/// One worker's subscriber stream: the leases it holds (never more than its max in-flight), and what waits to be sent
/// to it. Deliveries and confirmations queued while the stream writes are merged into one response message (of up to
/// <see cref="MaxResponseBytes"/>), so every leg of the stream batches.
/// </summary>
public sealed class WorkerSession : IDisposable
{
    /// <summary>Confirmations queued beyond this make the request reader wait for the writer (a client that never reads
    /// its responses cannot grow the broker's memory).</summary>
    public const int MaxQueuedConfirmations = 10_000;

    /// <summary>A response message holds deliveries and confirmations up to about this many bytes; what is queued beyond
    /// goes in the next one. gRPC clients refuse messages over 4 MiB unless told otherwise, and one delivery always fits
    /// (args are capped below that): a delivery larger than this bound still goes, alone.</summary>
    public const int MaxResponseBytes = 1 << 20;

    private readonly Lock _gate = new();
    private readonly Dictionary<long, HeldLease> _held = [];
    private readonly List<RawDelivery> _deliveries = [];
    private readonly List<SettleConfirmation> _confirmations = [];
    private readonly Channel<bool> _signal = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly CancellationTokenSource _aborted = new();
    private TaskCompletionSource _roomForConfirmations = CompletedSignal();
    private long _lastSent;
    private int _heartbeatDue;
    private Status? _abortStatus;
    private bool _disposed;

    /// <summary>Creates a session; <paramref name="openedAt"/> (a <see cref="TimeProvider.GetTimestamp"/> value) starts
    /// its silence.</summary>
    public WorkerSession(string id, string group, string? name, PatternSet filter, int maxInFlight, GroupPolicy policy, long openedAt)
    {
        _lastSent = openedAt;
        Id = id;
        Group = group;
        Name = name;
        Filter = filter;
        MaxInFlight = maxInFlight;
        Policy = policy;
    }

    /// <summary>Unique per stream.</summary>
    public string Id { get; }

    /// <summary>The worker's group.</summary>
    public string Group { get; }

    /// <summary>The name the worker gave, if any.</summary>
    public string? Name { get; }

    /// <summary>The worker's own patterns.</summary>
    public PatternSet Filter { get; }

    /// <summary>Most unsettled deliveries it may hold.</summary>
    public int MaxInFlight { get; }

    /// <summary>Whether settlements that were applied go unconfirmed (<c>SubscribeStart.omit_confirmed</c>): only stale and invalid ones are answered.</summary>
    public bool OmitsConfirmed { get; init; }

    /// <summary>Its group's policy.</summary>
    public GroupPolicy Policy { get; }

    /// <summary>Cancelled when the broker ends the stream (shutdown, group deleted).</summary>
    public CancellationToken Aborted => _aborted.Token;

    /// <summary>Why the broker ended the stream, once it did.</summary>
    public Status? AbortStatus
    {
        get
        {
            lock (_gate)
            {
                return _abortStatus;
            }
        }
    }

    /// <summary>How many more deliveries it may take now.</summary>
    public int Capacity
    {
        get
        {
            lock (_gate)
            {
                return _abortStatus is null ? MaxInFlight - _held.Count : 0;
            }
        }
    }

    /// <summary>How many deliveries it holds.</summary>
    public int InFlight
    {
        get
        {
            lock (_gate)
            {
                return _held.Count;
            }
        }
    }

    /// <summary>Takes new leases and queues their deliveries; false (nothing taken) once the session is closed.</summary>
    internal bool TryAccept(IReadOnlyList<LeasedEvent> leases, IReadOnlyList<RawDelivery> deliveries)
    {
        lock (_gate)
        {
            if (_abortStatus is not null)
            {
                return false;
            }

            foreach (var lease in leases)
            {
                _held[lease.EventId] = new HeldLease(lease.LeaseNo, lease.Attempt);
            }

            _deliveries.AddRange(deliveries);
        }

        _signal.Writer.TryWrite(true);
        return true;
    }

    /// <summary>True when the session holds exactly this lease; gives its attempt.</summary>
    public bool Holds(LeaseRef lease, out int attempt)
    {
        lock (_gate)
        {
            if (_held.TryGetValue(lease.EventId, out var held) && held.LeaseNo == lease.LeaseNo)
            {
                attempt = held.Attempt;
                return true;
            }
        }

        attempt = 0;
        return false;
    }

    /// <summary>Forgets a lease (settled, expired or stale); true when it was held.</summary>
    public bool Forget(LeaseRef lease)
    {
        lock (_gate)
        {
            return _held.TryGetValue(lease.EventId, out var held) && held.LeaseNo == lease.LeaseNo && _held.Remove(lease.EventId);
        }
    }

    /// <summary>Queues confirmations for the writer.</summary>
    public void Confirm(IReadOnlyList<SettleConfirmation> confirmations)
    {
        if (confirmations.Count == 0)
        {
            return;
        }

        lock (_gate)
        {
            _confirmations.AddRange(confirmations);
            if (_confirmations.Count >= MaxQueuedConfirmations && _roomForConfirmations.Task.IsCompleted)
            {
                _roomForConfirmations = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }
        }

        _signal.Writer.TryWrite(true);
    }

    /// <summary>Completes when the confirmation queue is below its bound.</summary>
    public Task WaitForRoomAsync(CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            return _roomForConfirmations.Task.WaitAsync(cancellationToken);
        }
    }

    /// <summary>
    /// The next message to send: what is queued, merged up to <see cref="MaxResponseBytes"/>; a heartbeat once
    /// <see cref="HeartbeatIfSilent"/> found the stream silent; null once the session was aborted.
    /// </summary>
    internal async Task<RawSubscribeResponse?> NextAsync(TimeProvider time, CancellationToken cancellationToken)
    {
        while (true)
        {
            var message = TakeQueued();
            if (message is null && Aborted.IsCancellationRequested)
            {
                return null;
            }

            // Whatever is sent now, the stream is not silent: a heartbeat asked for meanwhile is not needed.
            if (Interlocked.Exchange(ref _heartbeatDue, 0) == 1 && message is null)
            {
                message = new RawSubscribeResponse { Heartbeat = new Heartbeat { ServerTime = Timestamp.FromDateTimeOffset(time.GetUtcNow()) } };
            }

            if (message is not null)
            {
                Volatile.Write(ref _lastSent, time.GetTimestamp());
                return message;
            }

            // No timer or linked token per wait: the broker-wide heartbeat check and Abort both signal.
            await _signal.Reader.ReadAsync(cancellationToken);
        }
    }

    /// <summary>
    /// Asks for a heartbeat when nothing was sent for <paramref name="interval"/> up to <paramref name="now"/> (a
    /// <see cref="TimeProvider.GetTimestamp"/> value); called by one broker-wide timer for every session.
    /// </summary>
    internal void HeartbeatIfSilent(long now, TimeSpan interval, TimeProvider time)
    {
        if (time.GetElapsedTime(Volatile.Read(ref _lastSent), now) >= interval && Interlocked.Exchange(ref _heartbeatDue, 1) == 0)
        {
            _signal.Writer.TryWrite(true);
        }
    }

    /// <summary>Ends the session from the broker's side with <paramref name="status"/>.</summary>
    public void Abort(Status status)
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _abortStatus ??= status;
        }

        // Outside the lock: cancellation callbacks run inline and may call back into this session.
        try
        {
            _aborted.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // Closed in the meantime: nothing left to end.
        }

        // Wake the writer, which then ends the stream.
        _signal.Writer.TryWrite(true);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        lock (_gate)
        {
            _disposed = true;
            _aborted.Dispose();
        }
    }

    /// <summary>Closes the session and hands back the leases it still held (to release for redelivery).</summary>
    public IReadOnlyList<(LeaseRef Lease, int Attempt)> Close()
    {
        lock (_gate)
        {
            _abortStatus ??= new Status(StatusCode.Cancelled, "stream closed");
            var leases = _held.Select(kv => (new LeaseRef(kv.Key, kv.Value.LeaseNo), kv.Value.Attempt)).ToList();
            _held.Clear();
            _deliveries.Clear();
            _confirmations.Clear();
            _roomForConfirmations.TrySetResult();
            return leases;
        }
    }

    private RawSubscribeResponse? TakeQueued()
    {
        lock (_gate)
        {
            if (_deliveries.Count == 0 && _confirmations.Count == 0)
            {
                return null;
            }

            var message = new RawSubscribeResponse();
            var bytes = 0;
            var deliveries = CountWithin(_deliveries, ref bytes);
            var confirmations = CountWithin(_confirmations, ref bytes);
            Move(_deliveries, deliveries, message.Deliveries);
            Move(_confirmations, confirmations, message.Confirmations);
            if (_confirmations.Count < MaxQueuedConfirmations)
            {
                _roomForConfirmations.TrySetResult();
            }

            return message;
        }
    }

    /// <summary>How many of <paramref name="queued"/>, from the first, fit in a message that already holds
    /// <paramref name="bytes"/>; at least one when the message is still empty.</summary>
    private static int CountWithin<T>(List<T> queued, ref int bytes)
        where T : Google.Protobuf.IMessage
    {
        var count = 0;
        foreach (var item in queued)
        {
            // The item, its field tag and its length prefix.
            var size = item.CalculateSize() + 6;
            if (bytes > 0 && bytes + size > MaxResponseBytes)
            {
                break;
            }

            bytes += size;
            count++;
        }

        return count;
    }

    /// <summary>Moves the first <paramref name="count"/> of <paramref name="queued"/> into <paramref name="field"/>.</summary>
    private static void Move<T>(List<T> queued, int count, Google.Protobuf.Collections.RepeatedField<T> field)
    {
        if (count == queued.Count)
        {
            field.AddRange(queued);
            queued.Clear();
        }
        else if (count > 0)
        {
            field.AddRange(queued.GetRange(0, count));
            queued.RemoveRange(0, count);
        }
    }

    private static TaskCompletionSource CompletedSignal()
    {
        var signal = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        signal.SetResult();
        return signal;
    }

    private readonly record struct HeldLease(long LeaseNo, int Attempt);
}
