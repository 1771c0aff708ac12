namespace HookBroker.Broker.Storage.Sqlite;

/// <summary>An operation queued for the writer loop; completed only after its batch committed.</summary>
internal abstract class SqliteStoreOp(int items, CancellationToken cancellationToken)
{
    /// <summary>How many events or settlements it carries (a batch stops growing past a cap).</summary>
    public int Items { get; } = items;

    public CancellationToken CancellationToken { get; } = cancellationToken;

    public abstract void Execute(SqliteWriter writer);

    public abstract void Complete();

    public abstract void Fail(Exception exception);

    public abstract void Cancel();
}

internal sealed class SqliteStoreOp<T>(Func<SqliteWriter, T> work, int items, CancellationToken cancellationToken)
    : SqliteStoreOp(items, cancellationToken)
{
    // Continuations run on the thread pool, never inline on the writer loop.
    private readonly TaskCompletionSource<T> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private T? _result;

    public Task<T> Task => _done.Task;

    public override void Execute(SqliteWriter writer) => _result = work(writer);

    public override void Complete() => _done.TrySetResult(_result!);

    public override void Fail(Exception exception) => _done.TrySetException(exception);

    public override void Cancel() => _done.TrySetCanceled(CancellationToken);
}
