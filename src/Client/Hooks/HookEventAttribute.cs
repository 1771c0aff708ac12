namespace HookBroker.Client;

/// <summary>
/// Marks a method of a hooks class as the hook of a label (or pattern), for <see cref="Hooks.Add{T}()"/> and
/// <see cref="Hooks.Add(object)"/>. Parameters bind as with <see cref="Hooks.Event"/>. A method may carry several.
/// </summary>
/// <param name="label">The label, e.g. <c>user_created</c>, or a pattern such as <c>user.*</c> or <c>billing.&gt;</c>.</param>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = true, Inherited = true)]
public sealed class HookEventAttribute(string label) : Attribute
{
    /// <summary>The label or pattern.</summary>
    public string Label { get; } = label;
}
