using System.Buffers;
using System.Text.Json;

namespace HookBroker.Client.Internal;

/// <summary>
/// A delivery's args as a JSON object (<see cref="StructWireJsonDecoder"/>): the document and the pooled buffer it reads.
/// Dispose it once the hooks have run; <see cref="Root"/> is invalid after that.
/// </summary>
internal sealed class DecodedArgs(JsonDocument document, byte[] buffer) : IDisposable
{
    private byte[]? buffer = buffer;

    /// <summary>The args object.</summary>
    public JsonElement Root { get; } = document.RootElement;

    public void Dispose()
    {
        var rented = Interlocked.Exchange(ref buffer, null);
        if (rented is not null)
        {
            document.Dispose();
            ArrayPool<byte>.Shared.Return(rented);
        }
    }
}
