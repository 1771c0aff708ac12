namespace HookBroker.Client;

/// <summary>Raises events through a HookBroker: the remote form of <c>await app.execute_event(label, args)</c>.</summary>
public interface IHookBrokerClient : IAsyncDisposable
{
    /// <summary>
    /// Raises <paramref name="label"/> with <paramref name="args"/> and returns once the broker has durably stored it
    /// (or, with <see cref="RaiseOptions.WaitTimeout"/>, once every routed group has an outcome). Transient failures are
    /// retried with the same idempotency key, so the event is stored at most once.
    /// </summary>
    /// <param name="label">The label, e.g. <c>user_created</c>: 1–200 chars of <c>[A-Za-z0-9_.:-]</c>.</param>
    /// <param name="args">
    /// The hook's arguments: an anonymous object, a record, a POCO or an <c>IDictionary&lt;string, object?&gt;</c>,
    /// serialized to a JSON object through System.Text.Json. Null means no arguments.
    /// </param>
    /// <param name="options">Idempotency key, ordering key, headers and wait mode; null for the defaults.</param>
    /// <param name="cancellationToken">Cancels the raise (and its retries).</param>
    /// <returns>The event id, how many groups it was routed to, and in wait mode each group's outcome.</returns>
    /// <exception cref="InvalidEventException">The broker refused the event (INVALID_ARGUMENT).</exception>
    /// <exception cref="BrokerLimitException">A broker limit was hit (RESOURCE_EXHAUSTED).</exception>
    /// <exception cref="BrokerUnavailableException">The broker stayed unreachable through the retries, or the circuit is open.</exception>
    /// <exception cref="HookFailedException">Wait mode: a group's hook failed or the event was dead-lettered.</exception>
    ValueTask<RaiseResult> ExecuteEventAsync(string label, object? args = null, RaiseOptions? options = null, CancellationToken cancellationToken = default);
}
