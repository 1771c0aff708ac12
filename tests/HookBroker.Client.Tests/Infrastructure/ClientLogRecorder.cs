using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace HookBroker.Client.Tests.Infrastructure;

/// <summary>A logger provider that keeps the client's warnings and information entries: event name and structured values.</summary>
internal sealed class ClientLogRecorder : ILoggerProvider
{
    /// <summary>The entries, in the order they were logged.</summary>
    public ConcurrentQueue<Entry> Entries { get; } = new();

    /// <summary>The entries of one event (a <c>ClientLog</c> method name such as <c>RetryingRaise</c>).</summary>
    public IReadOnlyList<Entry> Named(string eventName) => [.. Entries.Where(e => e.EventName == eventName)];

    public ILogger CreateLogger(string categoryName) => new Recorder(this);

    public void Dispose()
    {
    }

    /// <summary>One log entry: its event name and its structured values by name.</summary>
    public sealed record Entry(string? EventName, IReadOnlyDictionary<string, object?> Values);

    private sealed class Recorder(ClientLogRecorder owner) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var values = state is IEnumerable<KeyValuePair<string, object?>> pairs
                ? pairs.ToDictionary(p => p.Key, p => p.Value)
                : [];
            owner.Entries.Enqueue(new Entry(eventId.Name, values));
        }
    }
}
